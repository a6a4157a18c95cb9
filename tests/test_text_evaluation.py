"""Text figures against values computed another way: a bigram model's cross-entropy read off its own table."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from ex_color.config import text_corpus
from ex_color.data.corpus import CHAR_CLASSES, char_class
from ex_color.text_evaluation import continue_text, evaluate_text_variants, held_out, prompts, text_validation
from ex_color.variants import Variant

from .small_text import small_text


class Bigram(nn.Module):
    """Next-token logits that depend on the current token only: a row of `table` per token."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(table)
        self.context = 64

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table(tokens)


@pytest.fixture(scope='module')
def experiment():
    return small_text()


def by_hand(table: torch.Tensor, windows: torch.Tensor, vocab: str) -> pd.DataFrame:
    """Per position: the next character's class, whether it is a digit, its cross-entropy and the digit mass."""
    x, y = windows[:, :-1].flatten(), windows[:, 1:].flatten()
    logp = torch.log_softmax(table.double(), dim=-1)
    digits = [i for i, c in enumerate(vocab) if c.isdigit()]
    return pd.DataFrame(
        {
            'cls': [char_class(vocab[i]) for i in y.tolist()],
            'digit': [vocab[i].isdigit() for i in y.tolist()],
            'ce': (-logp[x, y]).numpy(),
            'mass': logp[x][:, digits].exp().sum(-1).numpy(),
        }
    )


def test_class_cross_entropy_ratios_and_mass_by_hand(experiment):
    config = experiment.config
    vocab = text_corpus(config).vocab
    torch.manual_seed(0)
    table = torch.randn(len(vocab), len(vocab))
    digits = torch.tensor([c.isdigit() for c in vocab])
    edited_table = table.clone()
    edited_table[:, digits] -= 2.0  # every digit less likely after every character
    edited_table[:, vocab.index('e')] += 0.5
    variants = {
        'baseline': Variant('baseline', Bigram(table)),
        'ablated': Variant('ablated', Bigram(edited_table)),
    }
    results = evaluate_text_variants(variants, config)
    before = by_hand(table, held_out(config), vocab)
    after = by_hand(edited_table, held_out(config), vocab)
    base, edited = results['baseline'], results['ablated']
    for c in CHAR_CLASSES:
        assert base.class_ce[c] == pytest.approx(before.loc[before.cls == c, 'ce'].mean(), rel=1e-5)
        assert edited.class_ce_ratio[c] == pytest.approx(
            after.loc[after.cls == c, 'ce'].mean() / before.loc[before.cls == c, 'ce'].mean(), rel=1e-5
        )
    assert base.class_ce['all'] == pytest.approx(before.ce.mean(), rel=1e-5)
    assert edited.target_ratio == pytest.approx(after.ce[after.digit].mean() / before.ce[before.digit].mean(), rel=1e-5)
    assert edited.target_ratio == pytest.approx(edited.class_ce_ratio['digit'], rel=1e-6)  # digits are the concept
    others = {
        c: after.ce[(after.cls == c) & ~after.digit].mean() / before.ce[(before.cls == c) & ~before.digit].mean()
        for c in CHAR_CLASSES
        if c != 'digit'
    }
    worst = max(others, key=others.get)
    assert (edited.collateral_class, edited.collateral_ratio) == (worst, pytest.approx(others[worst], rel=1e-5))
    assert base.target_mass == pytest.approx(before.mass[before.digit].mean(), rel=1e-5)
    assert edited.target_mass == pytest.approx(after.mass[after.digit].mean(), rel=1e-5)
    assert edited.other_mass == pytest.approx(after.mass[~after.digit].mean(), rel=1e-5)
    assert base.class_ce_ratio == pytest.approx(dict.fromkeys(base.class_ce_ratio, 1.0))
    assert text_validation(Bigram(table), config)['val_recon'] == pytest.approx(before.ce.mean(), rel=1e-5)


def test_prompts_end_just_before_the_concept_and_continuations_share_their_draws(experiment):
    config = experiment.config
    corpus = text_corpus(config)
    shown = prompts(config)
    assert len(shown) == 4
    held = corpus.decode(corpus.held_out.tolist())
    for prompt in shown:
        at = held.index(prompt)
        assert held[at + len(prompt)].isdigit()
    torch.manual_seed(1)
    table = torch.randn(len(corpus.vocab), len(corpus.vocab))
    no_digits = table.clone()
    no_digits[:, torch.tensor([c.isdigit() for c in corpus.vocab])] = -1e4
    model, edited = Bigram(table), Bigram(no_digits)
    text = continue_text(model, [], corpus, shown[0], chars=80, seed=3)
    assert len(text) == 80 and text == continue_text(model, [], corpus, shown[0], chars=80, seed=3)
    assert not any(c.isdigit() for c in continue_text(edited, [], corpus, shown[0], chars=80, seed=3))


def test_the_untouched_probability_is_taken_at_each_edits_own_concept():
    """An edit aimed at another concept than the first evaluation's is compared with the untouched model's
    probability on *that* concept, at *its* positions."""
    from ex_color.config import load_experiment

    from .small_text import LM_DIGITS, OVERRIDES

    caps = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
    config = load_experiment(
        LM_DIGITS,
        overrides=[*OVERRIDES, f'labels.caps={{kind="next-token", chars="{caps}"}}', 'evaluations.2.target="caps"'],
    ).config
    vocab = text_corpus(config).vocab
    torch.manual_seed(2)
    table = torch.randn(len(vocab), len(vocab))
    variants = {
        'baseline': Variant('baseline', Bigram(table)),
        'suppressed': Variant('suppressed', Bigram(table * 0.5)),
    }
    results = evaluate_text_variants(variants, config)
    windows = held_out(config)
    x, y = windows[:, :-1].flatten(), windows[:, 1:].flatten()
    capital = torch.tensor([vocab[i] in caps for i in y.tolist()])
    p_caps = torch.softmax(table.double(), -1)[x][:, [i for i, c in enumerate(vocab) if c in caps]].sum(-1)
    assert results['suppressed'].targets == ['caps']
    assert results['suppressed'].untouched_target_mass == pytest.approx(float(p_caps[capital].mean()), rel=1e-5)
    assert results['baseline'].untouched_target_mass == pytest.approx(results['baseline'].target_mass)
