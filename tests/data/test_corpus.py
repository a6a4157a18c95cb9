import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ex_color.data.corpus import (
    CHAR_CLASSES,
    PYTHON_REFERENCE,
    Corpus,
    char_class,
    held_out_windows,
    load_corpus,
    windows,
)


def test_char_classes_by_hand():
    assert [char_class(c) for c in '7Qq \n.ß°—É'] == [
        'digit',
        'upper',
        'lower',
        'space',
        'space',
        'punct',
        'lower',
        'punct',
        'punct',
        'upper',
    ]


@given(st.text(min_size=1, max_size=50))
def test_every_character_is_in_one_class(text):
    assert all(char_class(c) in CHAR_CLASSES for c in text)


@given(st.text(min_size=10, max_size=200), st.floats(0.05, 0.95))
def test_encode_decode_round_trip_and_split(text, held_out):
    corpus = Corpus.from_text(text, held_out)
    assert corpus.decode(corpus.tokens.tolist()) == text
    assert corpus.decode(corpus.train.tolist()) + corpus.decode(corpus.held_out.tolist()) == text
    assert corpus.vocab == ''.join(sorted(set(text)))
    assert torch.equal(corpus.encode(text), corpus.tokens)


def test_encode_names_a_missing_character():
    corpus = Corpus.from_text('abcabc', 0.5)
    with pytest.raises(ValueError, match="'z'"):
        corpus.encode('az')


def test_members_and_class_ids():
    corpus = Corpus.from_text('a1 B.', 0.5)  # vocab ' ', '.', '1', 'B', 'a'
    assert corpus.vocab == ' .1Ba'
    assert corpus.members('1a').tolist() == [0, 0, 1, 0, 1]
    assert [CHAR_CLASSES[i] for i in corpus.class_ids()] == ['space', 'punct', 'digit', 'upper', 'lower']


def test_windows_and_held_out_windows():
    corpus = Corpus.from_text('abcdefghijklmnopqrstuvwxyz' * 4, 0.5)  # held-out: the last 52 characters
    assert corpus.decode(windows(corpus.tokens, torch.tensor([0, 3]), 4)[1].tolist()) == 'defg'
    held = held_out_windows(corpus, 10)
    assert held.shape == (5, 11)  # (52 − 1) // 10 windows of inputs and their next tokens
    assert corpus.decode(held[0].tolist()) == corpus.decode(corpus.held_out[:11].tolist())
    assert torch.equal(held[1, 0], held[0, -1])  # consecutive: each window starts where the last one's inputs end
    assert held_out_windows(corpus, 10, limit=2).shape == (2, 11)


def test_python_reference_is_the_default_corpus():
    corpus = load_corpus(PYTHON_REFERENCE, None, 0.1)
    assert len(corpus.tokens) > 400_000
    assert set('0123456789') <= set(corpus.vocab)
    assert corpus.split == round(len(corpus.tokens) * 0.9)


def test_a_file_corpus(tmp_path):
    path = tmp_path / 'text.txt'
    path.write_text('héllo wörld 12\n' * 10, encoding='utf-8')
    corpus = load_corpus(None, str(path), 0.2)
    assert corpus.decode(corpus.tokens.tolist()) == path.read_text(encoding='utf-8')
