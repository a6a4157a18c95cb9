"""`RegularizerConfig(feature_dim=...)`: regularizers on layers shaped `[B, C, ...]`, e.g. conv maps."""

import pytest
import torch

from ex_color.loss import Anchor, RegularizerConfig, Separate, Unitarity, regularization_loss, total_loss


def conv_map(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_anchor_on_a_conv_map_by_hand():
    """Per sample: the mean over positions (h, w) of ‖x[b, :, h, w] − p‖², worked with explicit loops."""
    x = conv_map(3, 2, 2, 4)  # [B, C, H, W]
    p = torch.tensor([0.5, -1.0])
    reg = RegularizerConfig('reg', Anchor(p), None, ['conv'], feature_dim=1)
    _, terms = regularization_loss([reg], {'conv': x}, {}, {})
    per_sample = []
    for b in range(3):
        distances = [
            sum((float(x[b, c, h, w]) - float(p[c])) ** 2 for c in range(2)) for h in range(2) for w in range(4)
        ]
        per_sample.append(sum(distances) / len(distances))
    assert float(terms['reg']) == pytest.approx(sum(per_sample) / 3, rel=1e-6)


def test_label_weights_apply_per_sample_after_averaging_positions():
    x = conv_map(4, 3, 2, 2)
    red = torch.tensor([1.0, 0.0, 1.0, 0.0])
    reg = RegularizerConfig('reg', Unitarity(), {'red': 1.0}, ['conv'], feature_dim=1)
    _, terms = regularization_loss([reg], {'conv': x}, {'red': red}, {})
    norms = torch.linalg.vector_norm(x, dim=1)  # [B, H, W], the norm over channels
    per_sample = ((norms - 1) ** 2).mean(dim=(1, 2))
    expected = (per_sample[0] + per_sample[2]) / 2
    assert float(terms['reg']) == pytest.approx(float(expected), rel=1e-5)


def test_separate_compares_samples_at_the_same_position():
    """Separate on [B, C, H, W] = the mean over positions of Separate on each position's batch [B, C]."""
    x = conv_map(5, 3, 2, 3)
    separate = Separate(power=2.0)
    reg = RegularizerConfig('reg', separate, None, ['conv'], feature_dim=1)
    _, terms = regularization_loss([reg], {'conv': x}, {}, {})
    per_position = [separate(x[:, :, h, w]) for h in range(2) for w in range(3)]  # each [B]
    expected = torch.stack(per_position).mean(dim=0).mean()
    assert float(terms['reg']) == pytest.approx(float(expected), rel=1e-6)


def test_negative_and_positive_feature_dims_agree():
    x = conv_map(3, 4, 2, 2)
    terms = [
        regularization_loss([RegularizerConfig('reg', Unitarity(), None, ['c'], feature_dim=f)], {'c': x}, {}, {})[1]
        for f in (1, -3)
    ]
    assert torch.equal(terms[0]['reg'], terms[1]['reg'])


def test_ensemble_conv_maps_equal_each_member_alone():
    """With leading ensemble dims, feature_dim counts from the per-model layout: total_loss finds them from
    the reconstruction's shape [S]."""
    x = conv_map(2, 4, 3, 2, 2)  # [S, B, C, H, W]
    recon = torch.tensor([0.5, 0.25])
    labels = {'red': torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])}
    for feature_dim in (1, -3):
        reg = RegularizerConfig('reg', Anchor(torch.ones(3)), {'red': 1.0}, ['conv'], feature_dim=feature_dim)
        total, terms = total_loss(recon, [reg], {'conv': x}, labels, {})
        alone = [total_loss(recon[s], [reg], {'conv': x[s]}, {'red': labels['red'][s]}, {})[0] for s in range(2)]
        assert terms['reg'].shape == (2,)
        torch.testing.assert_close(total, torch.stack(alone), rtol=1e-6, atol=0)


def test_default_feature_dim_is_unchanged_for_ensembles():
    """[S, B, D] with the default: exactly the regularizer on the stacked activations, batch-meaned."""
    x = conv_map(3, 6, 5)
    reg = RegularizerConfig('reg', Unitarity(), None, ['a'])
    _, terms = total_loss(torch.zeros(3), [reg], {'a': x}, {}, {})
    assert torch.equal(terms['reg'], Unitarity()(x).mean(dim=-1))


@pytest.mark.parametrize('feature_dim', [4, -4])
def test_a_feature_dim_outside_the_layer_is_one_line_naming_it(feature_dim):
    reg = RegularizerConfig('reg-conv', Unitarity(), None, ['conv'], feature_dim=feature_dim)
    with pytest.raises(ValueError, match=r"regularizer 'reg-conv': feature_dim .* layer 'conv'.*\[3, 2, 2, 2\]") as e:
        regularization_loss([reg], {'conv': conv_map(3, 2, 2, 2)}, {}, {})
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('feature_dim', [0, True, 1.0])
def test_feature_dim_must_be_a_non_zero_int(feature_dim):
    with pytest.raises(ValueError, match='feature_dim must be a non-zero int'):
        RegularizerConfig('reg', Unitarity(), None, ['a'], feature_dim=feature_dim)


def test_labels_for_another_batch_size_are_refused():
    reg = RegularizerConfig('reg', Unitarity(), {'red': 1.0}, ['conv'], feature_dim=1)
    with pytest.raises(ValueError, match="regularizer 'reg': layer 'conv' gives a loss for 3 samples"):
        regularization_loss([reg], {'conv': conv_map(3, 2, 4)}, {'red': torch.ones(4)}, {})
