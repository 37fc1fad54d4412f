"""The precision stacks while unlearning (unlearn/stacks.py): what each does to an update too small for a bf16
weight, what it saves, what it costs, and how the mechanism and its figure see it."""

import copy

import pandas as pd
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from qunlearn.analysis.mechanism import BF16_REACH, update_location
from qunlearn.data.muse import load_corpus
from qunlearn.models.checkpoints import DTYPES, load_state, save_model
from qunlearn.models.training import build_llama
from qunlearn.registry import STACKS as STACK_SPECS
from qunlearn.report import figures
from qunlearn.unlearn.loop import UnlearnSettings, unlearn
from qunlearn.unlearn.stacks import all_stacks, measured_bytes_per_param, memory_7b_gb, stochastic_round_to_bf16

STACKS = all_stacks()
UNLEARN_PRECISIONS = tuple(STACK_SPECS)
LR = 1e-5
BF16_CAP = 2**8 * LR  # a bf16 weight moves under an Adam step of about lr only below about this magnitude


def _settings(precision, **changes):
    values = dict(method="ga_gdr", lr=LR, epochs=1, batch_size=64, max_len=64, alpha=1.0, beta=0.1,
                  precision=precision, seed=0)
    return UnlearnSettings(**{**values, **changes})


def _model(tokenizer, precision):
    model = build_llama(len(tokenizer), 32, 1, 2, 64, 128, tokenizer, seed=0)
    with torch.no_grad():
        weight = model.model.layers[0].mlp.down_proj.weight
        weight[0] = 0.5  # far above the bf16 cap
        weight[1] = 1e-4  # below it
    return model.to(DTYPES[STACKS[precision].weight_dtype])


@pytest.mark.parametrize("precision", ["bf16", "bf16-adam32", "fp32"])
def test_one_bf16_step_leaves_weights_far_above_the_cap_bit_identical_while_fp32_moves_them(corpus_dir, toy_tokenizer,
                                                                                            precision):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer, precision)
    before = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"][:1], corpus.raw["retain1"][:1], _settings(precision))
    after = model.model.layers[0].mlp.down_proj.weight.detach()
    assert record["steps"] == 1 and before[0].abs().min() > 100 * BF16_CAP and before[1].abs().max() < BF16_CAP
    moved_large = (after[0] != before[0]).float().mean().item()
    moved_small = (after[1] != before[1]).float().mean().item()
    assert moved_small > 0.9  # a step of about lr moves a weight below the cap in either precision
    if precision.startswith("bf16"):  # 32-bit states or not, the update is written back with round-to-nearest
        assert moved_large == 0.0  # lr is far below half a bf16 unit of 0.5 (2^-9)
    else:
        assert moved_large > 0.9


def test_mixed_precision_forward_passes_see_each_step_s_new_weights(corpus_dir, toy_tokenizer):
    """autocast keeps bf16 copies of the weights until its outermost context exits: a context around the loop
    would run every step after the first on the step-0 weights, with normal-looking losses."""
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer, "mixed")
    forwards, states = [], []
    model.register_forward_hook(
        lambda module, args, kwargs, output: forwards.append((kwargs["input_ids"], kwargs["attention_mask"],
                                                              output.logits.detach().clone())),
        with_kwargs=True)
    hook = register_optimizer_step_post_hook(lambda *_: states.append(copy.deepcopy(model.state_dict())))
    try:
        unlearn(model, toy_tokenizer, corpus.raw["forget"][:3], corpus.raw["retain1"][:1], _settings("mixed", method="ga", lr=1e-2,
                                                                               batch_size=1))
    finally:
        hook.remove()
    assert len(forwards) == len(states) >= 3
    for step in range(1, len(forwards)):
        input_ids, attention_mask, logits = forwards[step]
        model.load_state_dict(states[step - 1])
        with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert torch.equal(logits, expected), f"step {step + 1} ran on stale weights"


# A hand-picked weight: w = 1.0 in bf16 with a constant gradient of 1, so that each AdamW step is about LR_HAND.
# Going down from 1.0 the bf16 unit is 2^-8, half of it 2^-9 ≈ 1.95e-3 > LR_HAND: a single step rounds back to 1.0.
LR_HAND, STEPS_HAND, DRAWS = 1e-3, 40, 16384
UNIT_BELOW_ONE = 2.0**-8


def _hand_trajectory(precision: str) -> torch.Tensor:
    """The weights after each of STEPS_HAND steps, [steps, DRAWS], as fp32; every weight starts at 1.0."""
    stack = STACKS[precision]
    weight = torch.nn.Parameter(torch.ones(DRAWS, dtype=DTYPES[stack.weight_dtype]))
    optimizer = stack.optimizer([weight], LR_HAND, 0)
    trajectory = []
    for _ in range(STEPS_HAND):
        weight.grad = torch.ones_like(weight)
        optimizer.step()
        trajectory.append(weight.detach().float().clone())
    return torch.stack(trajectory)


@pytest.fixture(scope="module")
def fp32_reference() -> torch.Tensor:
    """The exact update's trajectory: the same AdamW in fp32, one weight."""
    return _hand_trajectory("fp32")[:, 0]


def test_the_stacks_are_the_grid_s_and_differ_only_in_precision():
    assert [stack.name for stack in STACKS.values()] == ["bf16", "bf16-adam32", "bf16-sr", "bf16-kahan", "fp32", "mixed"]
    assert all(name == stack.name for name, stack in STACKS.items())  # each spec names its own stack
    assert all(s.weight_dtype in DTYPES for s in STACKS.values())
    torch_defaults = torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))]).defaults
    for name, stack in STACKS.items():
        weight = torch.nn.Parameter(torch.ones(4, dtype=DTYPES[stack.weight_dtype]))
        group = stack.optimizer([weight], 3e-5, 0).param_groups[0]
        assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
            3e-5, torch_defaults["betas"], torch_defaults["eps"], torch_defaults["weight_decay"]), name


@pytest.mark.parametrize("precision", UNLEARN_PRECISIONS)
def test_each_tensor_counts_its_own_adam_steps_as_sure_s_mask_needs(precision):
    """A tensor without a gradient for three steps (SURE masked it) takes a first step of lr when it gets one, as in
    torch's AdamW; a bias correction counted for the steps it missed would make it 0.55 · lr."""
    dtype = DTYPES[STACKS[precision].weight_dtype]
    always, later = torch.nn.Parameter(torch.zeros(64, dtype=dtype)), torch.nn.Parameter(torch.zeros(64, dtype=dtype))
    optimizer = STACKS[precision].optimizer([always, later], 1e-3, 0)
    for step in range(4):
        always.grad = torch.ones_like(always)
        later.grad = torch.ones_like(later) if step == 3 else None
        optimizer.step()
    assert later.detach().float().tolist() == pytest.approx([-1e-3] * 64, rel=0.01)


@pytest.mark.parametrize("precision", ["bf16", "bf16-adam32"])
def test_round_to_nearest_bf16_stacks_lose_a_step_below_half_a_unit(precision, fp32_reference):
    assert fp32_reference[-1] < 1 - 10 * UNIT_BELOW_ONE  # the exact updates add up to ten units
    assert (_hand_trajectory(precision) == 1.0).all()  # and every one of them was rounded away


def test_stochastic_rounding_keeps_the_update_in_expectation(fp32_reference):
    trajectory = _hand_trajectory("bf16-sr")
    exact = fp32_reference - 1
    assert ((trajectory[0] == 1.0) | (trajectory[0] == 1.0 - UNIT_BELOW_ONE)).all()  # each draw lands on the grid
    for step in (0, 9, STEPS_HAND - 1):
        assert (trajectory[step] - 1).mean() == pytest.approx(exact[step].item(), rel=0.05)


def test_kahan_summation_keeps_the_update_exactly(fp32_reference):
    """'Exactly': at every step the bf16 weight is the bf16 rounding of the exact trajectory, wherever that lies more
    than an eighth of a unit from a rounding midpoint (closer, the compensation's own bf16 rounding and the weight
    decay, which torch-optimi applies to the bf16 weight outside the compensation, may tip it), and never more
    than a unit from it. No randomness: every weight takes the same path."""
    trajectory = _hand_trajectory("bf16-kahan")
    assert (trajectory == trajectory[:, :1]).all()
    kahan, in_units = trajectory[:, 0], (1 - fp32_reference) / UNIT_BELOW_ONE
    clear_of_midpoints = ((in_units % 1) - 0.5).abs() > 1 / 8
    assert clear_of_midpoints.sum() >= STEPS_HAND // 2
    assert torch.equal(kahan[clear_of_midpoints], fp32_reference.to(torch.bfloat16).float()[clear_of_midpoints])
    assert ((kahan - fp32_reference).abs() <= UNIT_BELOW_ONE).all()


@pytest.mark.parametrize("precision", ["fp32", "mixed"])
def test_fp32_weights_keep_every_step(precision, fp32_reference):
    trajectory = _hand_trajectory(precision)
    assert torch.equal(trajectory, fp32_reference[:, None].expand_as(trajectory))
    assert 1 - fp32_reference[-1] == pytest.approx(STEPS_HAND * LR_HAND, rel=0.01)  # each step about lr


@pytest.mark.parametrize("value", [1.0 - 3e-4, -(1.0 - 3e-4), 3.3e-5, 0.75])
def test_stochastic_rounding_is_unbiased_and_keeps_representable_values(value):
    x = torch.full((200_000,), value)
    rounded = stochastic_round_to_bf16(x, torch.Generator().manual_seed(0)).float()
    below, above = rounded.min().item(), rounded.max().item()
    assert rounded.unique().numel() <= 2 and below <= value <= above  # the two bf16 neighbours only
    if below != above:
        assert rounded.mean().item() == pytest.approx(value, abs=0.01 * (above - below))
    else:
        assert below == value  # exactly representable: never moved


def test_stochastic_rounding_repeats_under_its_seed():
    x = torch.rand(1000)
    first, second = (stochastic_round_to_bf16(x, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(first, stochastic_round_to_bf16(x, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("precision", UNLEARN_PRECISIONS)
def test_every_stack_unlearns_and_saves_in_its_weight_dtype_without_rounding_its_update(corpus_dir, toy_tokenizer,
                                                                                        precision, tmp_path):
    """As workflow/scripts/unlearn.py does: load in the stack's weight dtype, unlearn, save the model as it is."""
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer, precision)
    before = {name: w.detach().clone() for name, w in model.state_dict().items()}
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"][:3], corpus.raw["retain1"][:3],
                     _settings(precision, method="npo_gdr", lr=1e-3, epochs=2, batch_size=1))
    assert record["steps"] >= 4 and not record["diverged"]
    save_model(model, tmp_path / "unlearned")
    saved = load_state(tmp_path / "unlearned")
    dtype = DTYPES[STACKS[precision].weight_dtype]
    assert {w.dtype for w in saved.values()} == {dtype}
    assert all(torch.equal(saved[name], w) for name, w in model.state_dict().items() if name in saved)
    weight = "model.layers.0.mlp.down_proj.weight"
    update = saved[weight] != before[weight]
    assert update.float().mean() > 0.05
    if dtype == torch.float32:  # what saving in bf16 would do: erase part of the update
        erased = saved[weight].bfloat16() == before[weight].bfloat16()
        assert (update & erased).any()


def test_declared_bytes_per_parameter_are_the_optimizer_s(tiny_llama):
    """Weights, gradients, moments and Kahan's compensation, summed over the tensors after one step; autocast's bf16
    copies live outside the optimizer (declared, not measured)."""
    for name, stack in STACKS.items():
        model = copy.deepcopy(tiny_llama).to(DTYPES[stack.weight_dtype]).train()
        optimizer = stack.optimizer(list(model.parameters()), 1e-3, 0)
        ids = torch.randint(0, 64, (2, 16))
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        measured = measured_bytes_per_param(model, optimizer)
        expected = {**stack.bytes_per_param, **({"copies": 0} if stack.autocast else {})}
        assert measured == pytest.approx(expected, rel=1e-3), name
    assert [s.total_bytes for s in STACKS.values()] == [8, 12, 8, 10, 16, 18]
    assert memory_7b_gb(STACKS["bf16"]) == pytest.approx(6.74 * (8 + 2))  # GB with NPO's bf16 reference


def _hand_update(precision: str, weights: torch.Tensor, lr: float, steps: int) -> torch.Tensor:
    stack = STACKS[precision]
    weight = torch.nn.Parameter(weights.to(DTYPES[stack.weight_dtype]))
    optimizer = stack.optimizer([weight], lr, 0)
    for _ in range(steps):
        weight.grad = torch.ones_like(weight)
        optimizer.step()
    return weight.detach().float()


@pytest.mark.parametrize("precision,moves_above_cap", [("bf16", False), ("bf16-adam32", False), ("bf16-sr", True),
                                                        ("bf16-kahan", True)])
def test_the_bf16_cap_binds_only_where_updates_are_rounded_to_nearest(precision, moves_above_cap):
    """mechanism.update_location bins weights by |w| / (BF16_REACH · lr): under round-to-nearest no weight beyond
    twice the cap moves; stochastic rounding and Kahan summation move them too, so their moves reach every bin."""
    lr, name = 1e-3, "model.layers.0.mlp.down_proj.weight"
    cap = BF16_REACH * lr
    target = torch.tensor([0.25, 0.75, 1.5, 3.0, 6.0]).repeat(256, 1) * cap  # one column per bin, 2-inf twice
    unlearned = _hand_update(precision, target, lr, steps=20)
    target = target.to(DTYPES[STACKS[precision].weight_dtype]).float()  # where the weight started, in its dtype
    bins = update_location({name: target}, {name: unlearned}, {name: target}, lr)["down_proj"]["cap_bins"]
    assert bins["0-0.5"]["moved"] == 1.0
    assert (bins["2-inf"]["moved"] > 0.5) is moves_above_cap
    if not moves_above_cap:
        assert bins["2-inf"]["moved"] == 0.0 and bins["2-inf"]["update_share"] == 0.0


def test_the_surviving_update_figure_draws_one_line_per_stack(tmp_path, monkeypatch):
    rows = [dict(corpus="toy-news", target_seed=0, model=f"npo_gdr_lr{lr:.0e}_{stack}_s0", audited=False,
                 method="npo_gdr", lr=lr,
                 stack=stack, seed=0, format="rtn-w4g64", quantizer="rtn", bits=4, surviving_update=0.5, ratio_vs_full=0.1,
                 bf16_threshold_lr=2e-5)
            for stack in UNLEARN_PRECISIONS for lr in (1e-5, 3e-5)]
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.append(figure))
    figures.surviving_update_against_lr(pd.DataFrame(rows), tmp_path / "figure.png")
    legend = {text.get_text() for text in drawn[0].legends[0].texts}
    assert set(UNLEARN_PRECISIONS) <= legend
    for ax in drawn[0].axes:  # per panel, one solid line through both lrs per stack, each in its own colour
        lines = [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) == 2]
        assert len(lines) == len({line.get_color() for line in lines}) == len(UNLEARN_PRECISIONS)
