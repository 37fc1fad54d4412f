"""The paper's mechanism, measured: how many quantized weights of an unlearned model equal the target's, and
how far unlearning moved each weight in units of the target's quantization step."""

from collections import defaultdict
from pathlib import Path

import torch

from .quantization import load_dequantized

STEP_THRESHOLDS = (0.01, 0.1, 0.5, 1.0)  # |ΔW| / step: the cumulative distribution at these points
SCALE_SUFFIX = ".weight_scale"


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
    fraction whose quantized value equals the target's, and, given the target's steps, the fraction of
    weights that moved by less than each of STEP_THRESHOLDS steps. Every dict holds `quantized_weights`."""
    counts = defaultdict(lambda: torch.zeros(3 + len(STEP_THRESHOLDS), dtype=torch.float64))
    thresholds = torch.tensor(STEP_THRESHOLDS)
    for name, w_target in target.items():
        w_unlearned = unlearned[name]
        same = target_quantized[name] == unlearned_quantized[name]
        row = [w_target.numel(), (w_target != w_unlearned).sum().item(), same.sum().item()]
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
    result = {"moved": (c[1] / c[0]).item(), "same_code": (c[2] / c[0]).item()}
    for threshold, below in zip(STEP_THRESHOLDS, c[3:]):
        value = (below / c[0]).item()
        result[f"below_{threshold:g}_steps"] = None if value != value else value  # NaN: not comparable
    return result


def measure(target: dict, unlearned: dict, target_quantized_dir: str | Path, unlearned_quantized_dir: str | Path,
            quantizer: str) -> dict:
    """The comparison for one unlearned model under one saved format; `target` and `unlearned` hold the
    `quantized_weights` of the full-precision models. AWQ rescales each model's input channels by its own
    activation statistics before rounding, so its stored codes live in per-model bases: for AWQ only the stored
    quantized values are compared, and step units are left out."""
    target_dequantized = load_dequantized(target_quantized_dir).state_dict()
    unlearned_dequantized = quantized_weights(load_dequantized(unlearned_quantized_dir).state_dict())
    steps = None if quantizer == "awq" else quantization_steps(target_dequantized)
    result = compare(target, unlearned, quantized_weights(target_dequantized), unlearned_dequantized, steps)
    return {"quantizer": quantizer, "step_units": steps is not None, **result}
