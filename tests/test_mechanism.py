import pytest
import torch

from qunlearn.mechanism import compare, quantized_weights
from qunlearn.quantization import rtn_oracle


def _state(seed):
    torch.manual_seed(seed)
    return quantized_weights({"model.layers.0.mlp.down_proj.weight": torch.randn(8, 64),
                              "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 64), "lm_head.weight": torch.randn(8, 64),
                              "model.layers.0.input_layernorm.weight": torch.randn(64)})


def _rtn(state, bits):
    return {k: rtn_oracle(v, bits, 32, False) for k, v in state.items()}


def _same_code(target, unlearned, bits):
    return compare(target, unlearned, _rtn(target, bits), _rtn(unlearned, bits), None)["all"]["same_code"]


def test_identical_models_share_every_code():
    state = _state(0)
    steps = {k: torch.ones(8, 2) for k in state}
    result = compare(state, state, _rtn(state, 4), _rtn(state, 4), steps)
    assert result["all"] == {"moved": 0.0, "same_code": 1.0, "below_0.01_steps": 1.0, "below_0.1_steps": 1.0,
                             "below_0.5_steps": 1.0, "below_1_steps": 1.0}
    assert set(result) == {"all", "down_proj", "q_proj"}  # lm_head is not quantized, so not counted


def test_small_moves_stay_in_their_bin_large_moves_leave_it():
    target = _state(0)
    tiny = {k: v + 1e-6 for k, v in target.items()}
    large = {k: v + 0.5 for k, v in target.items()}
    assert _same_code(target, tiny, 4) > 0.95 and _same_code(target, large, 4) < 0.2
    # 8-bit steps are 16 times finer: the same move changes more codes.
    medium = {k: v + 0.02 for k, v in target.items()}
    assert _same_code(target, medium, 8) < _same_code(target, medium, 4)


def test_moves_in_units_of_the_targets_step_by_hand():
    target = {"model.layers.0.mlp.down_proj.weight": torch.zeros(2, 64)}
    steps = {"model.layers.0.mlp.down_proj.weight": torch.tensor([[0.1, 1.0], [0.1, 1.0]])}  # per group of 32
    unlearned = {"model.layers.0.mlp.down_proj.weight": torch.full((2, 64), 0.03)}  # 0.3 and 0.03 steps
    result = compare(target, unlearned, target, target, steps)["down_proj"]
    assert result["moved"] == 1.0
    assert result["below_0.01_steps"] == 0.0 and result["below_0.1_steps"] == pytest.approx(0.5)
    assert result["below_0.5_steps"] == 1.0 and result["below_1_steps"] == 1.0


def test_without_steps_the_step_columns_are_empty():
    state = _state(0)
    assert compare(state, state, state, state, None)["all"]["below_1_steps"] is None
