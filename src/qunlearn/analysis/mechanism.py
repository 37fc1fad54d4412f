"""The paper's mechanism, measured: how many quantized weights of an unlearned model equal the target's, how far
unlearning moved each weight in units of the target's quantization step, and how much of the unlearning update
survives quantization."""

from collections import defaultdict
from pathlib import Path

import torch

from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import load_in_format
from qunlearn.quantize.bitsandbytes import bitsandbytes_dequantized
from qunlearn.registry import FORMATS

STEP_THRESHOLDS = (0.01, 0.1, 0.5, 1.0)  # |ΔW| / step: the cumulative distribution at these points
SCALE_SUFFIX = ".weight_scale"
# In pure bf16 an Adam step of about lr moves a weight only while |w| < BF16_REACH · lr (half a bf16 unit, 2^-8
# of the weight, must stay below the step), so a moved weight stays below that cap. The cap binds wherever the update
# is written back with round-to-nearest (bf16, bf16-adam32); stochastic rounding and Kahan summation move weights
# beyond it (tests/test_precision.py), and their update's location shows it.
BF16_REACH = 2**8
CAP_BINS = (0.5, 1.0, 2.0)  # |w_target| / (BF16_REACH · lr): the edges of the bins the update is located in
NEAR_ZERO = 0.01  # a code is near zero within this fraction of its row's largest quantized magnitude


def quantized_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights a group-wise quantizer touches: 2-D Linear weights of the decoder layers (not lm_head)."""
    return {name: w.float() for name, w in state.items()
            if name.startswith("model.layers.") and name.endswith(".weight") and w.ndim == 2}


def quantization_steps(dequantized: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each quantized weight's step (its group's scale), from the state dict of a dequantized
    compressed-tensors model (which keeps each weight's `weight_scale`)."""
    return {name.removesuffix(SCALE_SUFFIX) + ".weight": scale.float()
            for name, scale in dequantized.items() if name.endswith(SCALE_SUFFIX)}


def compare(target: dict, unlearned: dict, target_quantized: dict, unlearned_quantized: dict,
            target_steps: dict | None) -> dict:
    """Per layer type (q_proj, down_proj, ...) and overall: the fraction of weights unlearning moved, the
    fraction whose quantized value equals the target's, the surviving update (`surviving_update`, the projection
    ⟨Q(W_u) − Q(W_t), W_u − W_t⟩ / ‖W_u − W_t‖²: 1 where quantization keeps the update's direction, 0 where it
    erases it; `surviving_norm`, ‖Q(W_u) − Q(W_t)‖ / ‖W_u − W_t‖), and, given the target's steps, the fraction of
    weights that moved by less than each of STEP_THRESHOLDS steps."""
    counts = defaultdict(lambda: torch.zeros(6 + len(STEP_THRESHOLDS), dtype=torch.float64))
    thresholds = torch.tensor(STEP_THRESHOLDS)
    for name, w_target in target.items():
        w_unlearned = unlearned[name]
        update = (w_unlearned - w_target).double()
        quantized_update = (unlearned_quantized[name] - target_quantized[name]).double()
        same = target_quantized[name] == unlearned_quantized[name]
        row = [w_target.numel(), (w_target != w_unlearned).sum().item(), same.sum().item(),
               (quantized_update * update).sum().item(), update.square().sum().item(),
               quantized_update.square().sum().item()]
        if target_steps is not None:
            steps = target_steps[name].repeat_interleave(w_target.shape[1] // target_steps[name].shape[1], dim=1)
            in_steps = (w_unlearned - w_target).abs() / steps
            row += (in_steps[..., None] < thresholds).sum(dim=(0, 1)).tolist()
        else:
            row += [float("nan")] * len(STEP_THRESHOLDS)
        row = torch.tensor(row, dtype=torch.float64)
        counts[name.split(".")[-2]] += row
        counts["all"] += row
    return {kind: _fractions(c) for kind, c in counts.items()}


def _fractions(c: torch.Tensor) -> dict:
    total, moved, same, dot, update_sq, quantized_sq = c[:6].tolist()
    result = {"moved": moved / total, "same_code": same / total,
              "surviving_update": dot / update_sq if update_sq else None,
              "surviving_norm": (quantized_sq / update_sq) ** 0.5 if update_sq else None}
    for threshold, below in zip(STEP_THRESHOLDS, c[6:]):
        value = (below / c[0]).item()
        result[f"below_{threshold:g}_steps"] = None if value != value else value  # NaN: not comparable
    return result


def update_location(target: dict, unlearned: dict, target_quantized: dict, lr: float | None) -> dict:
    """Where the update lives, per layer type and overall: in bins of |w_target| relative to the bf16 cap
    BF16_REACH · lr, the fraction of the bin's weights that moved (`moved`) and the bin's share of the update's
    squared norm (`update_share`); and `moved_near_zero_code`, the fraction of moved weights whose target code is
    zero or near it (within NEAR_ZERO of the row's largest), where a format rounds small updates away. An audited
    model of unknown lr has no cap: one bin, `cap_bins` None."""
    edges = torch.tensor([0.0, *(CAP_BINS if lr else ()), float("inf")], dtype=torch.float64)
    bins = len(edges) - 1
    counts = defaultdict(lambda: torch.zeros(3 * bins + 2, dtype=torch.float64))
    for name, w_target in target.items():
        update = (unlearned[name] - w_target).double()
        moved = update != 0
        which = torch.bucketize(w_target.double().abs() / (BF16_REACH * (lr or 1)), edges[1:-1], right=True)
        quantized = target_quantized[name].abs()
        near_zero = quantized <= NEAR_ZERO * quantized.amax(dim=1, keepdim=True)
        row = torch.cat([torch.bincount(which.flatten(), minlength=bins).double(),
                         torch.bincount(which[moved], minlength=bins).double(),
                         torch.bincount(which.flatten(), weights=update.square().flatten(), minlength=bins),
                         torch.tensor([moved.sum().item(), (moved & near_zero).sum().item()], dtype=torch.float64)])
        counts[name.split(".")[-2]] += row
        counts["all"] += row
    labels = [f"{low:g}-{high:g}" for low, high in zip(edges[:-1].tolist(), edges[1:].tolist())]
    located = {kind: _located(c, labels) for kind, c in counts.items()}
    return located if lr else {kind: {**result, "cap_bins": None} for kind, result in located.items()}


def check_same_shapes(target: dict, unlearned: dict) -> None:
    """The weights compared one by one must exist in both models with one shape (audit mode checks this at the
    workflow's start when the target exists; an embedded target trained later is checked here)."""
    for name, weight in target.items():
        if name not in unlearned or unlearned[name].shape != weight.shape:
            found = list(unlearned[name].shape) if name in unlearned else "missing"
            raise QunlearnError(f"{name}: the target's shape is {list(weight.shape)}, the unlearned model's {found}",
                                "compare a model unlearned from this target (the same architecture and sizes)")


def _located(c: torch.Tensor, labels: list[str]) -> dict:
    bins = len(labels)
    weights, moved, squares = c[:bins], c[bins : 2 * bins], c[2 * bins : 3 * bins]
    total_square, (all_moved, near_zero) = squares.sum().item(), c[3 * bins :].tolist()
    return {
        "cap_bins": {label: {"weights": int(w), "moved": m / w if w else None,
                             "update_share": q / total_square if total_square else None}
                     for label, w, m, q in zip(labels, weights.tolist(), moved.tolist(), squares.tolist())},
        "moved_near_zero_code": near_zero / all_moved if all_moved else None,
    }


def bf16_threshold_lr(half_zero_bins: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per layer type, the median over groups of the learning rate below which a pure-bf16 update cannot carry a
    weight out of the format's zero bin (its cap BF16_REACH · lr stays below the bin's half-width)."""
    by_kind = defaultdict(list)
    for name, half_widths in half_zero_bins.items():
        by_kind[name.split(".")[-2]].append(half_widths.flatten().double() / BF16_REACH)
    return {kind: torch.cat(values).median().item()
            for kind, values in {**by_kind, "all": [v for vs in by_kind.values() for v in vs]}.items()}


def measure(target: dict, unlearned: dict, target_quantized_dir: str | Path, unlearned_quantized_dir: str | Path,
            quantizer: str, lr: float | None) -> dict:
    """The comparison for one unlearned model (unlearned at `lr`) under one saved format; `target` and
    `unlearned` hold the `quantized_weights` of the full-precision models. AWQ rescales each model's input
    channels by its own activation statistics before rounding, so its stored codes live in per-model bases; an FP4
    format's step grows along its codebook, GGUF keeps its scales in the file (and k-quants nest two levels of
    them): for these (specs without `step_units`) only the stored quantized values are compared, and step units and
    the threshold are left out."""
    target_dequantized = load_in_format(target_quantized_dir, quantizer).state_dict()
    unlearned_dequantized = quantized_weights(load_in_format(unlearned_quantized_dir, quantizer).state_dict())
    steps = quantization_steps(target_dequantized) if FORMATS[quantizer].step_units else None
    target_quantized = quantized_weights(target_dequantized)
    result = compare(target, unlearned, target_quantized, unlearned_dequantized, steps)
    threshold = None if steps is None else bf16_threshold_lr({name: step / 2 for name, step in steps.items()})
    return {"quantizer": quantizer, "step_units": steps is not None, "lr": lr, "bf16_threshold_lr": threshold,
            "location": update_location(target, unlearned, target_quantized, lr), **result}


def measure_on_load(target: dict, unlearned: dict, quantizer: str, lr: float | None) -> dict:
    """The comparison for a bitsandbytes format, which quantizes while loading: both models' weights quantized
    and dequantized with bitsandbytes' own functions. Its steps vary along its codebook, so step units are left
    out; its zero bin is measured on the format itself (`zero_bin_edge`)."""
    def quantized(state: dict) -> dict:
        return {name: bitsandbytes_dequantized(weight, quantizer) for name, weight in state.items()}

    target_quantized = quantized(target)
    edge = zero_bin_edge(quantizer)
    half_zero_bins = {name: edge * _bitsandbytes_block_absmax(weight, quantizer) for name, weight in target.items()}
    return {"quantizer": quantizer, "step_units": False, "lr": lr, "bf16_threshold_lr": bf16_threshold_lr(half_zero_bins),
            "location": update_location(target, unlearned, target_quantized, lr),
            **compare(target, unlearned, target_quantized, quantized(unlearned), None)}


def zero_bin_edge(quantizer: str) -> float:
    """The largest |w| / absmax that a bitsandbytes format rounds to zero or near it, found on the format
    itself: rows of 64 weights whose absmax is 1, each otherwise filled with one value of a fine ramp."""
    ramp = torch.linspace(0, 0.5, 4097)
    block = ramp[:, None].repeat(1, 64)
    block[:, 0] = 1.0
    codes = bitsandbytes_dequantized(block, quantizer)[:, 1]
    return ramp[codes.abs() <= NEAR_ZERO].max().item()


def _bitsandbytes_block_absmax(weight: torch.Tensor, quantizer: str) -> torch.Tensor:
    """The absmax each weight is scaled by: per row for LLM.int8, per block of 64 (row-major) for FP4 and NF4."""
    if FORMATS[quantizer].recipe.get("load_in_8bit"):
        return weight.abs().amax(dim=1)
    return weight.flatten().reshape(-1, 64).abs().amax(dim=1)
