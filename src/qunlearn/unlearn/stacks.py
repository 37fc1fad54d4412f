"""The precision stacks people unlearn with (docs/paper.md §9), one registry entry each: the dtype the weights are
loaded, trained and saved in, the AdamW that updates them, whether each step's forward passes run under bf16
autocast, and the bytes a parameter costs. Each is named by its spec in registry.STACKS.

Every stack runs AdamW with torch's defaults (ADAMW), set explicitly where a library's defaults differ, so that
the stacks differ only in precision: where the weights, moments and compensation live, and how an update is
written back to a weight."""

from dataclasses import dataclass
from typing import Callable

import optimi
import torch
from torch.optim.adamw import adamw as torch_adamw_step

from qunlearn.registry import STACKS as STACK_SPECS
from qunlearn.registry import resolve

# torch.optim.AdamW's defaults; torch-optimi's are betas (0.9, 0.99) and eps 1e-6, bitsandbytes' equal torch's.
ADAMW = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
PARTS = ("weights", "gradients", "optimizer states", "copies")  # copies: Kahan's compensation, autocast's bf16 copies


class PerTensorAdamW(torch.optim.Optimizer):
    """AdamW over bf16 weights with its state per tensor, as torch's AdamW keeps it: bf16 moments and a step count
    that moves only when the tensor has a gradient (SURE's per-step mask leaves some without one). A subclass says
    how one tensor is updated."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr, **ADAMW})
        if any(p.dtype != torch.bfloat16 for group in self.param_groups for p in group["params"]):
            raise ValueError(f"{type(self).__name__} updates bf16 weights: give it a model in bf16")

    def _new_state(self, p: torch.Tensor) -> dict:
        return {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in (p for p in group["params"] if p.grad is not None):
                state = self.state[p]
                if not state:
                    state.update(self._new_state(p))
                self._update(p, state, group)
        return loss


class StochasticRoundingAdamW(PerTensorAdamW):
    """torch's AdamW step computed on fp32 copies of each bf16 weight and its bf16 moments, the weight written back
    with stochastic rounding (its expected value is the exact update) and the moments with round-to-nearest: the
    arithmetic of torchao's AdamW(bf16_stochastic_round=True), at pure bf16's memory. Written here because torchao,
    once installed, is imported by every transformers model import (+0.6 s and warnings in every job) and its
    optimizer compiles per tensor shape (4-23 s a job, 2.5-4x slower steps on CPU; docs/precision-stacks.md)."""

    def __init__(self, params, lr: float, seed: int):
        super().__init__(params, lr)
        self.seed = seed
        self.generators: dict[torch.device, torch.Generator] = {}  # the rounding's random bits, seeded per device

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self.generators:
            self.generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self.generators[device]

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        (beta1, beta2), moments = group["betas"], [state["exp_avg"].float(), state["exp_avg_sq"].float()]
        weight = p.float()
        torch_adamw_step([weight], [p.grad.float()], moments[:1], moments[1:], [], [state["step"]], foreach=False,
                         amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                         eps=group["eps"], maximize=False)
        p.copy_(stochastic_round_to_bf16(weight, self._generator(p.device)))
        state["exp_avg"].copy_(moments[0])
        state["exp_avg_sq"].copy_(moments[1])


class KahanAdamW(PerTensorAdamW):
    """torch-optimi's Kahan-compensated AdamW step (its functional `adamw`), tensor by tensor: its optimizer class
    counts Adam's bias-correction steps per parameter group, every step, so a tensor SURE masked for a while would
    take a larger first step than under torch's AdamW (up to 3.2 lr)."""

    def _new_state(self, p: torch.Tensor) -> dict:
        return {**super()._new_state(p), "kahan_comp": torch.zeros_like(p)}

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        beta1, beta2 = group["betas"]
        optimi.adamw([p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [state["kahan_comp"]], lr=group["lr"],
                     beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                     step=state["step"], kahan_sum=True)


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """fp32 -> bf16, rounding away from zero with probability (the dropped low 16 bits) / 2^16: adding 16 random
    bits to the magnitude's bit pattern and truncating carries into the kept bits exactly that often."""
    noise = torch.randint(0, 1 << 16, x.shape, device=x.device, dtype=torch.int32, generator=generator)
    return ((x.view(torch.int32) + noise) & -65536).view(torch.float32).to(torch.bfloat16)  # -65536: 0xFFFF0000


def torch_adamw(params, lr: float, seed: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, **ADAMW)


def adamw_32bit_states(params, lr: float, seed: int) -> torch.optim.Optimizer:
    """open-unlearning's `paged_adamw_32bit`. Paging only moves the states between GPU and host memory (CUDA
    only; on CPU bitsandbytes falls back to this class with a warning): the arithmetic is the same."""
    import bitsandbytes

    return bitsandbytes.optim.AdamW32bit(params, lr=lr, **ADAMW)


def kahan_adamw(params, lr: float, seed: int) -> torch.optim.Optimizer:
    return KahanAdamW(params, lr)


@dataclass(frozen=True)
class PrecisionStack:
    name: str
    models: str  # what it models and whose default it is
    weight_dtype: str  # checkpoints.DTYPES key: the weights are loaded, unlearned and saved in it
    optimizer: Callable[..., torch.optim.Optimizer]  # (params, lr, seed) -> AdamW with ADAMW's hyperparameters
    bytes_per_param: dict[str, int]  # by PARTS; moment and compensation sizes are checked against the optimizer's
    autocast: bool = False  # bf16 autocast around each step's forward passes

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_per_param.values())


def _bytes(weights: int, gradients: int, states: int, copies: int = 0) -> dict[str, int]:
    return dict(zip(PARTS, (weights, gradients, states, copies)))


# The stacks, each named by its spec in registry.STACKS (`precision_stack` looks one up by name).
BF16 = PrecisionStack("bf16", "the paper's and MUSE's: a model loaded in bf16 and trained by the Hugging Face "
                      "Trainer (bf16=True, adamw_torch): bf16 weights and AdamW states, no fp32 master copy", "bf16",
                      torch_adamw, _bytes(2, 2, 4))
BF16_ADAM32 = PrecisionStack("bf16-adam32", "open-unlearning's: bf16 weights with bitsandbytes' 32-bit AdamW "
                             "states (paged_adamw_32bit); each update still written back to a bf16 weight with "
                             "round-to-nearest", "bf16", adamw_32bit_states, _bytes(2, 2, 8))
BF16_SR = PrecisionStack("bf16-sr", "pure bf16 with stochastic rounding of the weight write-back (torchao's "
                         "AdamW(bf16_stochastic_round=True)): every update kept in expectation, at pure bf16's memory",
                         "bf16", StochasticRoundingAdamW, _bytes(2, 2, 4))
BF16_KAHAN = PrecisionStack("bf16-kahan", "pure bf16 with Kahan-compensated updates (torch-optimi's "
                            "AdamW(kahan_sum=True)): a bf16 buffer keeps what rounding dropped and adds it back",
                            "bf16", kahan_adamw, _bytes(2, 2, 4, 2))
FP32 = PrecisionStack("fp32", "fp32 weights and AdamW states throughout (a model loaded in fp32 without bf16)", "fp32",
                      torch_adamw, _bytes(4, 4, 8))
MIXED = PrecisionStack("mixed", "fp32 master weights, each step's forward passes autocast to bf16 (AMP; DeepSpeed "
                       "bf16 and FSDP mixed precision keep fp32 masters too); copies: autocast's bf16 weights, held per "
                       "step", "fp32", torch_adamw, _bytes(4, 4, 8, 2), autocast=True)


def precision_stack(name: str) -> PrecisionStack:
    return resolve(STACK_SPECS[name].impl)


def all_stacks() -> dict[str, PrecisionStack]:
    """Every registered stack by name, in the registry's order."""
    return {name: precision_stack(name) for name in STACK_SPECS}


LLAMA_7B_PARAMS = 6.74e9  # Llama-2-7B
REFERENCE_BYTES = 2  # NPO's and KLR's frozen reference model, in bf16


def memory_7b_gb(stack: PrecisionStack, with_reference: bool = True) -> float:
    """GB (10^9 bytes) a 7B model costs under `stack` before activations, with NPO's frozen bf16 reference."""
    return LLAMA_7B_PARAMS * (stack.total_bytes + REFERENCE_BYTES * with_reference) / 1e9


def measured_bytes_per_param(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Bytes per parameter by part, from the tensors themselves after a step: the weights, their gradients (call
    before zero_grad), the optimizer's moments, and its compensation buffers. Scalar step counters are left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    count = sum(p.numel() for p in params)
    states = [(key, value) for state in optimizer.state.values() for key, value in state.items()
              if torch.is_tensor(value) and value.ndim > 0]
    return {"weights": sum(p.nbytes for p in params) / count,
            "gradients": sum(p.grad.nbytes for p in params if p.grad is not None) / count,
            "optimizer states": sum(v.nbytes for k, v in states if k != "kahan_comp") / count,
            "copies": sum(v.nbytes for k, v in states if k == "kahan_comp") / count}

