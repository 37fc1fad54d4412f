"""SURE (the paper's fix): only the modules whose forget-loss gradient norm is at or above the gamma-th percentile of
all modules' norms are updated; the others' gradients are dropped before the optimizer step."""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributed.tensor import DTensor


@dataclass
class SureSettings:
    gamma: float  # percentile: modules whose forget-gradient norm is at or above it are updated
    mask: str  # "per_step" (the paper's code) or "once" (chosen before training from the whole forget set)


def module_of(parameter: str) -> str:
    """'model.layers.3.mlp.down_proj.weight' -> 'model.layers.3.mlp.down_proj': SURE's unit."""
    return parameter.rsplit(".", 1)[0]


def module_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of each module that owns parameters (model.layers.3.mlp.down_proj, ...)."""
    squares = defaultdict(list)
    for name, param in model.named_parameters():
        if param.grad is not None:
            squares[module_of(name)].append(param.grad.float().pow(2).sum())
    module_squares = torch.stack([torch.stack(parts).sum() for parts in squares.values()])
    if isinstance(module_squares, DTensor):  # sharded gradients (sharding.py): each rank holds part of every sum
        module_squares = module_squares.full_tensor()
    norms = module_squares.sqrt().tolist()
    return dict(zip(squares, norms))


def salient_modules(norms: dict[str, float], gamma: float) -> set[str]:
    """Modules whose gradient norm is at or above the gamma-th percentile of all modules' norms."""
    threshold = float(np.percentile(list(norms.values()), gamma))
    return {module for module, norm in norms.items() if norm >= threshold}


def mask_gradients(model: torch.nn.Module, keep: set[str]) -> None:
    """Drop the gradients of every module not in `keep`: AdamW skips a parameter without a gradient, so
    neither its update, its weight decay nor its moment estimates move."""
    for name, param in model.named_parameters():
        if module_of(name) not in keep:
            param.grad = None
