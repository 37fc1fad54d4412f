"""Quantizers (REFERENCE.md §5), one registry entry each.

Two families:
- saved: llmcompressor quantizes and writes a compressed-tensors checkpoint; evaluation loads it
  dequantized to plain float weights, so one evaluation path serves every precision;
- on-load: bitsandbytes formats (FP4, NF4, LLM.int8) applied while loading the full-precision checkpoint,
  as the paper's code evaluated; never saved, since bitsandbytes' 4-bit save and reload is broken here.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import load_model, load_tokenizer
from .errors import QunlearnError
from .io import atomic_dir


@dataclass(frozen=True)
class Quantizer:
    name: str
    bits: tuple[int, ...]
    saved: bool  # True: a quantize rule writes a checkpoint; False: quantized while loading


QUANTIZERS = {
    "rtn": Quantizer("rtn", (4, 8), saved=True),
    "bnb-fp4": Quantizer("bnb-fp4", (4,), saved=False),
    "bnb-nf4": Quantizer("bnb-nf4", (4,), saved=False),
    "bnb-int8": Quantizer("bnb-int8", (8,), saved=False),
}


def check_quantizer(name: str, bits: int) -> Quantizer:
    if name not in QUANTIZERS:
        raise QunlearnError(f"unknown quantizer {name!r}", f"use one of {sorted(QUANTIZERS)}")
    quantizer = QUANTIZERS[name]
    if bits not in quantizer.bits:
        raise QunlearnError(f"quantizer {name!r} does not support {bits} bits", f"use bits in {list(quantizer.bits)}")
    return quantizer


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


def _rtn_recipe(bits: int, group_size: int, symmetric: bool):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.quantization import QuantizationModifier

    weights = QuantizationArgs(num_bits=bits, type="int", strategy="group", group_size=group_size, symmetric=symmetric)
    scheme = QuantizationScheme(targets=["Linear"], weights=weights)
    return QuantizationModifier(config_groups={"group_0": scheme}, ignore=["lm_head"])


def check_group_size(model: torch.nn.Module, group_size: int) -> None:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head") and module.in_features % group_size:
            raise QunlearnError(
                f"group size {group_size} does not divide the input width {module.in_features} of {name}",
                "set quantization.group_size to a divisor of the model's hidden and intermediate sizes",
            )


def quantize_and_save(model_dir: str | Path, out_dir: str | Path, quantizer: str, bits: int, group_size: int,
                      symmetric: bool) -> None:
    """Quantize a full-precision checkpoint with llmcompressor and save it compressed."""
    from llmcompressor import oneshot

    check_quantizer(quantizer, bits)
    model = load_model(model_dir, "fp32")
    check_group_size(model, group_size)
    recipes = {"rtn": _rtn_recipe}
    oneshot(model=model, recipe=recipes[quantizer](bits, group_size, symmetric))
    tokenizer = load_tokenizer(model_dir) if (Path(model_dir) / "tokenizer.json").is_file() else None
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging, save_compressed=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)


def load_dequantized(quantized_dir: str | Path) -> torch.nn.Module:
    """Load a compressed-tensors checkpoint as ordinary fp32 Linear weights."""
    from transformers import CompressedTensorsConfig

    return load_model(quantized_dir, "fp32", quantization_config=CompressedTensorsConfig(dequantize=True))


def load_bitsandbytes(model_dir: str | Path, quantizer: str) -> torch.nn.Module:
    """Quantize on load with bitsandbytes, as the paper's code evaluated (lm_head stays full precision)."""
    from transformers import BitsAndBytesConfig

    configs = {
        "bnb-fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32),
        "bnb-nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32),
        "bnb-int8": dict(load_in_8bit=True),
    }
    return load_model(model_dir, "fp32", quantization_config=BitsAndBytesConfig(**configs[quantizer]))
