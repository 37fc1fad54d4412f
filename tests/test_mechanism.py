import pytest
import torch

from qunlearn.analysis.mechanism import (BF16_REACH, bf16_threshold_lr, compare, measure_on_load, quantized_weights,
                                         update_location, zero_bin_edge)
from qunlearn.quantize.oracle import rtn_oracle


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
                             "below_0.5_steps": 1.0, "below_1_steps": 1.0, "surviving_update": None,
                             "surviving_norm": None}  # no update, nothing to survive
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


def _surviving(target, unlearned, quantize):
    result = compare(target, unlearned, quantize(target), quantize(unlearned), None)["all"]
    return result["surviving_update"], result["surviving_norm"]


def test_an_identity_format_and_whole_step_moves_keep_the_whole_update():
    target = _state(0)
    unlearned = {k: v + 0.01 * torch.randn_like(v) for k, v in target.items()}
    assert _surviving(target, unlearned, lambda state: state) == pytest.approx((1.0, 1.0))
    # Weights on a 4-bit grid of step 0.1 whose groups all span the full range (codes -8 and 7 kept in place), so
    # the grid is the same before and after; interior weights move by whole steps.
    codes = torch.randint(-6, 6, (8, 64)).float()  # interior codes -6..5, moved by at most one step
    codes[:, ::32], codes[:, 1::32] = -8, 7
    moves = torch.randint(-1, 2, (8, 64)).float()
    moves[:, ::32], moves[:, 1::32] = 0, 0
    name = "model.layers.0.mlp.down_proj.weight"
    on_grid, whole_steps = {name: codes * 0.1}, {name: (codes + moves) * 0.1}
    assert _surviving(on_grid, whole_steps, lambda state: _rtn(state, 4)) == pytest.approx((1.0, 1.0), abs=1e-4)


def test_an_update_inside_every_weight_s_code_does_not_survive():
    codes = torch.randint(-6, 6, (8, 64)).float()  # on a 4-bit grid of step 0.1, every group spanning the range
    codes[:, ::32], codes[:, 1::32] = -8, 7
    inside = torch.rand(8, 64) * 0.08 - 0.04  # less than half a step, away from every rounding boundary
    inside[:, ::32], inside[:, 1::32] = 0, 0
    name = "model.layers.0.mlp.down_proj.weight"
    target, unlearned = {name: codes * 0.1}, {name: codes * 0.1 + inside}
    assert _surviving(target, unlearned, lambda state: _rtn(state, 4)) == (0.0, 0.0)


def test_surviving_update_by_hand():
    name = "model.layers.0.mlp.down_proj.weight"
    target, unlearned = {name: torch.tensor([[0.0, 1.0]])}, {name: torch.tensor([[0.2, 1.1]])}  # update (0.2, 0.1)
    quantized_target, quantized_unlearned = {name: torch.tensor([[0.0, 1.0]])}, {name: torch.tensor([[0.5, 1.0]])}
    result = compare(target, unlearned, quantized_target, quantized_unlearned, None)["down_proj"]
    assert result["surviving_update"] == pytest.approx(0.5 * 0.2 / (0.2**2 + 0.1**2))  # 2.0
    assert result["surviving_norm"] == pytest.approx(0.5 / (0.2**2 + 0.1**2) ** 0.5)


@pytest.mark.parametrize("weight,moves", [(0.05, True), (0.1, True), (0.6, False), (1.5, False)])
def test_bf16_cap_a_step_of_lr_moves_only_weights_below_2_to_the_8_times_lr(weight, moves):
    lr = 1e-3  # cap BF16_REACH · lr = 0.256
    before = torch.tensor([weight, -weight], dtype=torch.bfloat16)
    after = before - torch.tensor(lr, dtype=torch.bfloat16)  # what AdamW's first step (about lr) does in pure bf16
    assert bool((after != before).all()) is moves
    assert (weight < BF16_REACH * lr) is moves


def test_update_location_by_hand():
    name = "model.layers.0.mlp.down_proj.weight"
    target = {name: torch.tensor([[0.1, 0.2, 0.3, 1.0]])}  # |w| / cap at lr 1e-3: 0.39, 0.78, 1.17, 3.9
    unlearned = {name: torch.tensor([[0.1 + 3e-3, 0.2 - 4e-3, 0.3, 1.0]])}
    quantized = {name: torch.tensor([[0.0, 0.0, 0.5, 1.0]])}  # the first two sit in the zero code
    located = update_location(target, unlearned, quantized, lr=1e-3)["down_proj"]
    assert {label: b["moved"] for label, b in located["cap_bins"].items()} == {"0-0.5": 1.0, "0.5-1": 1.0, "1-2": 0.0,
                                                                               "2-inf": 0.0}
    assert located["cap_bins"]["0-0.5"]["update_share"] == pytest.approx(9 / 25, rel=1e-3)
    assert located["cap_bins"]["2-inf"]["update_share"] == 0 and located["moved_near_zero_code"] == 1.0


def test_bf16_threshold_is_the_lr_whose_cap_is_half_a_step():
    name = "model.layers.0.mlp.down_proj.weight"
    steps = {name: torch.tensor([[0.0512, 0.0512, 0.1024]])}  # median half-step 0.0256
    assert bf16_threshold_lr({k: v / 2 for k, v in steps.items()}) == {"down_proj": pytest.approx(1e-4),
                                                                         "all": pytest.approx(1e-4)}


def test_fp4_rounds_more_of_the_small_weights_to_zero_than_nf4_and_int8():
    """FP4's code book has only a tiny subnormal between 0 and 1/6 of the absmax: its near-zero bin is wide."""
    edges = {q: zero_bin_edge(q) for q in ("bnb-fp4", "bnb-nf4", "bnb-int8")}
    assert edges["bnb-fp4"] == pytest.approx((1 / 6 + 1 / 192) / 2, abs=2e-4)  # midway to the next code
    assert edges["bnb-fp4"] > edges["bnb-nf4"] > edges["bnb-int8"] > 0


def test_surviving_update_by_hand_under_rtn_and_bnb_fp4():
    name = "model.layers.0.mlp.down_proj.weight"
    # RTN 4-bit asymmetric, one group of 32 spanning [-0.8, 0.7]: step 0.1. One weight moves 0.1 -> 0.26, whose
    # code moves 1 -> 3 (0.3): quantized change 0.2 against an update of 0.16.
    target = torch.zeros(1, 32)
    target[0, :3] = torch.tensor([-0.8, 0.7, 0.1])
    unlearned = target.clone()
    unlearned[0, 2] = 0.26
    rtn = compare({name: target}, {name: unlearned}, _rtn({name: target}, 4), _rtn({name: unlearned}, 4), None)["all"]
    assert rtn["surviving_update"] == pytest.approx(0.2 * 0.16 / 0.16**2, rel=1e-4)
    assert rtn["surviving_norm"] == pytest.approx(0.2 / 0.16, rel=1e-4)
    # bnb FP4, one block of 64 with absmax 1: 0.1 rounds to the code 1/6, 0.3 to 1/3; an update of 0.2 survives
    # as 1/6.
    target = torch.zeros(1, 64)
    target[0, :2] = torch.tensor([1.0, 0.1])
    unlearned = target.clone()
    unlearned[0, 1] = 0.3
    fp4 = measure_on_load({name: target}, {name: unlearned}, "bnb-fp4", lr=1e-3)["all"]
    assert fp4["surviving_update"] == pytest.approx((1 / 3 - 1 / 6) * 0.2 / 0.2**2, rel=1e-3)
    assert fp4["moved"] == pytest.approx(1 / 64)
