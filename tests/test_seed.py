import logging
import os
import random

import numpy as np
import pytest
import torch

from ex_color.model import CNColorMLP
from ex_color.seed import set_deterministic_mode


@pytest.fixture(autouse=True)
def restore_global_state():
    """set_deterministic_mode changes process-wide settings; put them back for other tests."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    env = {k: os.environ.get(k) for k in ('CUBLAS_WORKSPACE_CONFIG', 'PL_GLOBAL_SEED', 'PL_SEED_WORKERS')}
    torch_rng, np_rng, py_rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    torch.set_rng_state(torch_rng)
    np.random.set_state(np_rng)
    random.setstate(py_rng)


def _draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(5), np.random.rand(5), random.random()


def test_same_seed_same_draws():
    set_deterministic_mode(3)
    first = _draws()
    set_deterministic_mode(3)
    second = _draws()
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_different_seed_different_draws():
    set_deterministic_mode(3)
    first = torch.rand(5)
    set_deterministic_mode(4)
    assert not torch.equal(first, torch.rand(5))


def test_model_initialisation_is_reproducible():
    set_deterministic_mode(0)
    first = CNColorMLP(5, n_nonlinear=2).state_dict()
    torch.rand(7)  # disturb the RNG between the two runs
    set_deterministic_mode(0)
    second = CNColorMLP(5, n_nonlinear=2).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_enables_deterministic_algorithms_and_logs(caplog):
    torch.use_deterministic_algorithms(False)
    with caplog.at_level(logging.INFO, logger='ex_color.seed'):
        set_deterministic_mode(1)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] in {':4096:8', ':16:8'}
    assert 'PyTorch set to deterministic mode' in caplog.text


def test_rejects_non_integer_seed():
    with pytest.raises(TypeError, match='seed must be an int'):
        set_deterministic_mode(1.5)
