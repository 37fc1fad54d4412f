"""The names the grid is built from: methods, quantizers and figures. Plain data, no torch: the Snakefile
imports this module at every start, dry runs included; the implementations live in unlearning.py,
quantization.py and plots.py, each keyed by these names (tests check that they match)."""

from dataclasses import dataclass

from .errors import QunlearnError

FORGET_LOSSES = ("ga", "npo")
RETAIN_LOSSES = ("gdr", "klr")
METHODS: dict[str, tuple[str, str | None]] = {
    f"{forget}{'_' + retain if retain else ''}": (forget, retain)
    for forget in FORGET_LOSSES
    for retain in (None, *RETAIN_LOSSES)
}
SURE_SUFFIX = "_sure"
METHOD_NAMES = sorted([*METHODS, *(m + SURE_SUFFIX for m in METHODS)])


# The precision stacks people unlearn with (precision_stacks.py says what each models): pure bf16 (the paper's and
# MUSE's), bf16 weights with 32-bit AdamW states (open-unlearning's), pure bf16 with stochastic rounding or Kahan
# summation of the update, fp32, and mixed (fp32 master weights, bf16 autocast: AMP, DeepSpeed).
UNLEARN_PRECISIONS = ("bf16", "bf16-adam32", "bf16-sr", "bf16-kahan", "fp32", "mixed")


def parse_method(name: str) -> tuple[str, bool]:
    """'ga_klr_sure' -> ('ga_klr', True)."""
    base = name.removesuffix(SURE_SUFFIX)
    if base not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {METHOD_NAMES}")
    return base, name != base


@dataclass(frozen=True)
class Quantizer:
    name: str
    bits: tuple[int, ...]
    saved: bool  # True: a quantize rule writes a checkpoint; False: quantized while loading
    group_size: int | None = None  # fixed by the format (FP4 microscaling, GGUF blocks); else from the config
    gguf: bool = False  # written as a GGUF file by llama.cpp's quantizer (the `gguf` extra), not by llmcompressor


QUANTIZERS = {
    "rtn": Quantizer("rtn", (4, 8), saved=True),
    "gptq": Quantizer("gptq", (4, 8), saved=True),
    "awq": Quantizer("awq", (4, 8), saved=True),
    # FP4 (E2M1) values in blocks with a shared scale, as vLLM serves them on Blackwell GPUs: NVFP4's blocks of 16
    # have FP8 scales under a per-tensor scale, MXFP4's blocks of 32 power-of-two scales.
    "nvfp4": Quantizer("nvfp4", (4,), saved=True, group_size=16),
    "mxfp4": Quantizer("mxfp4", (4,), saved=True, group_size=32),
    # llama.cpp's formats (Ollama, LM Studio): legacy blocks of 32, k-quants in super-blocks of 256, where _M keeps
    # some tensors (attn_v, ffn_down, output) at a higher type, as llama.cpp chooses.
    "gguf-q8_0": Quantizer("gguf-q8_0", (8,), saved=True, group_size=32, gguf=True),
    "gguf-q4_0": Quantizer("gguf-q4_0", (4,), saved=True, group_size=32, gguf=True),
    "gguf-q4_k_m": Quantizer("gguf-q4_k_m", (4,), saved=True, group_size=256, gguf=True),
    "gguf-q5_k_m": Quantizer("gguf-q5_k_m", (5,), saved=True, group_size=256, gguf=True),
    "bnb-fp4": Quantizer("bnb-fp4", (4,), saved=False),
    "bnb-nf4": Quantizer("bnb-nf4", (4,), saved=False),
    "bnb-int8": Quantizer("bnb-int8", (8,), saved=False),
}
CALIBRATED = ("gptq", "awq")


def check_quantizer(name: str, bits: int) -> Quantizer:
    if name not in QUANTIZERS:
        raise QunlearnError(f"unknown quantizer {name!r}", f"use one of {sorted(QUANTIZERS)}")
    quantizer = QUANTIZERS[name]
    if bits not in quantizer.bits:
        raise QunlearnError(f"quantizer {name!r} does not support {bits} bits", f"use bits in {list(quantizer.bits)}")
    return quantizer


FIGURES = ("recovery_verdicts", "forget_across_precisions", "forget_vs_utility", "recovery_ratios",
           "surviving_update_against_lr", "paper_comparison", "attack_recovery")


# Attacks other than quantization (docs/attacks.md, REFERENCE.md §10): each a transform of a checkpoint, implemented
# in attacks.py under the same name. Every knob has a default; where each comes from is in docs/attacks.md.
@dataclass(frozen=True)
class Attack:
    name: str
    defaults: dict  # every knob of the attack and its default


TRAINING_DEFAULTS = {"steps": 30, "lr": 3e-5, "batch_size": 4, "precision": "bf16"}
ATTACKS = {
    "relearn": Attack("relearn", TRAINING_DEFAULTS),  # on half A of the forget documents
    "finetune": Attack("finetune", {"data": "retain2", **TRAINING_DEFAULTS}),  # on documents without forget facts
    "prune": Attack("prune", {"method": "wanda", "sparsity": 0.5, "structure": "unstructured"}),
}
PRUNING_METHODS = ("magnitude", "wanda", "sparsegpt")
PRUNING_STRUCTURES = ("unstructured", "2:4")
FINETUNE_DATA = ("retain2", "holdout")  # MUSE's raw splits that share no fact with the forget set
