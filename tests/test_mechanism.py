import torch

from qunlearn.mechanism import same_code_fraction


def _state(seed):
    torch.manual_seed(seed)
    return {"model.layers.0.mlp.down_proj.weight": torch.randn(8, 64), "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 64),
            "lm_head.weight": torch.randn(8, 64)}


def test_identical_models_share_every_code():
    state = _state(0)
    result = same_code_fraction(state, state, 4, 32, False)
    assert result["all"] == {"moved": 0.0, "same_code": 1.0}
    assert set(result) == {"all", "down_proj", "q_proj"}  # lm_head is not quantized, so not counted


def test_small_moves_stay_in_their_bin_large_moves_leave_it():
    target = _state(0)
    tiny = {k: v + 1e-6 for k, v in target.items()}
    large = {k: v + 0.5 for k, v in target.items()}
    small_result = same_code_fraction(target, tiny, 4, 32, False)["all"]
    assert small_result["moved"] == 1.0 and small_result["same_code"] > 0.95
    assert same_code_fraction(target, large, 4, 32, False)["all"]["same_code"] < 0.2
    # 8-bit steps are 16 times finer: the same move changes more codes.
    medium = {k: v + 0.02 for k, v in target.items()}
    assert same_code_fraction(target, medium, 8, 32, False)["all"]["same_code"] < same_code_fraction(target, medium, 4, 32, False)["all"]["same_code"]
