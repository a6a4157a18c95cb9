import pytest
import torch

from ex_color.data.corpus import Corpus
from ex_color.data.token_labels import TokenLabel, draw_labels


def test_next_and_current_labels_by_hand():
    corpus = Corpus.from_text('a1b22c', 0.5)
    window = corpus.encode('a1b22c').unsqueeze(0)
    x, y = window[:, :-1], window[:, 1:]  # inputs 'a1b22', next '1b22c'
    digits = corpus.members('0123456789')
    assert TokenLabel('0123456789', 'next').indicator(x, y, digits).tolist() == [[1, 0, 1, 1, 0]]
    assert TokenLabel('0123456789', 'current').indicator(x, y, digits).tolist() == [[0, 1, 0, 1, 1]]
    half = TokenLabel('0123456789', 'next', scale=0.5)
    assert half.probabilities(x, y, digits).tolist() == [[0.5, 0, 0.5, 0.5, 0]]


def test_hard_labels_are_draws_and_soft_labels_the_probabilities():
    p = {'digit': torch.full((200, 50), 0.25)}
    assert draw_labels(p, soft=True)['digit'] is p['digit']
    drawn = draw_labels(p, soft=False, generator=torch.Generator().manual_seed(0))['digit']
    assert set(drawn.unique().tolist()) == {0.0, 1.0}
    assert abs(float(drawn.mean()) - 0.25) < 0.02


@pytest.mark.parametrize('kwargs', [{'chars': ''}, {'chars': '1', 'position': 'previous'}, {'chars': '1', 'scale': 2}])
def test_bad_labels_are_refused(kwargs):
    with pytest.raises(ValueError):
        TokenLabel(**{'position': 'next', **kwargs})
