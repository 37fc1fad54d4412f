"""The test oracle for llmcompressor's RTN."""

import torch


def rtn_oracle(weight: torch.Tensor, bits: int, group_size: int, symmetric: bool) -> torch.Tensor:
    """Plain group-wise round-to-nearest fake quantization: the test oracle for llmcompressor's RTN.

    Written out by hand on purpose: an independent 20-line statement of the arithmetic to hold the library to.
    """
    rows, cols = weight.shape
    groups = weight.reshape(rows, cols // group_size, group_size)
    low = groups.amin(-1, keepdim=True).clamp(max=0)
    high = groups.amax(-1, keepdim=True).clamp(min=0)
    q_min, q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if symmetric:
        scale = torch.maximum(low.abs(), high) / ((q_max - q_min) / 2)
        zero = torch.zeros_like(scale)
    else:
        scale = (high - low) / (q_max - q_min)
        zero = torch.clamp(q_min - low / scale, q_min, q_max)
    scale = torch.where(scale == 0, torch.finfo(scale.dtype).eps, scale)
    zero = torch.round(zero)
    codes = torch.clamp(torch.round(groups / scale + zero), q_min, q_max)
    return ((codes - zero) * scale).reshape(rows, cols)
