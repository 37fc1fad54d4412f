"""The paper's mechanism, measured: how many quantized weights of an unlearned model equal the target's."""

from collections import defaultdict

import torch

from .quantization import rtn_oracle


def quantized_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights a group-wise quantizer touches: 2-D Linear weights of the decoder layers (not lm_head)."""
    return {name: w.float() for name, w in state.items() if name.startswith("model.layers.") and w.ndim == 2}


def same_code_fraction(target: dict, unlearned: dict, bits: int, group_size: int, symmetric: bool) -> dict:
    """Fractions of weights that unlearning moved, and whose RTN-quantized value still equals the target's,
    per layer type (q_proj, down_proj, ...) and overall."""
    counts = defaultdict(lambda: torch.zeros(3, dtype=torch.float64))  # weights, moved, same quantized value
    targets, unlearned = quantized_weights(target), quantized_weights(unlearned)
    for name, w_target in targets.items():
        w_unlearned = unlearned[name]
        same = rtn_oracle(w_target, bits, group_size, symmetric) == rtn_oracle(w_unlearned, bits, group_size, symmetric)
        row = torch.tensor([w_target.numel(), (w_target != w_unlearned).sum().item(), same.sum().item()], dtype=torch.float64)
        counts[name.split(".")[-2]] += row
        counts["all"] += row
    return {kind: {"moved": (c[1] / c[0]).item(), "same_code": (c[2] / c[0]).item()} for kind, c in counts.items()}
