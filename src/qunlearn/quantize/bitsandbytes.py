"""The bitsandbytes backend (FP4, NF4, LLM.int8): formats applied while loading the full-precision checkpoint, as the
paper's code evaluated; never saved, since bitsandbytes' 4-bit save and reload is broken here."""

from pathlib import Path

import torch

from qunlearn.models.checkpoints import load_model
from qunlearn.registry import FORMATS, Format


def load_bitsandbytes(model_dir: str | Path, fmt: Format) -> torch.nn.Module:
    """Quantize on load with bitsandbytes in the format's recipe (BitsAndBytesConfig's arguments), as the paper's
    code evaluated (lm_head stays full precision); 4-bit formats compute in fp32."""
    from transformers import BitsAndBytesConfig

    compute = {"bnb_4bit_compute_dtype": torch.float32} if fmt.recipe.get("load_in_4bit") else {}
    return load_model(model_dir, "fp32", quantization_config=BitsAndBytesConfig(**fmt.recipe, **compute))


def bitsandbytes_dequantized(weight: torch.Tensor, quantizer: str) -> torch.Tensor:
    """A weight as a bitsandbytes on-load format stores it, dequantized with bitsandbytes' own functions: the
    same values as `load_bitsandbytes`' layers hold (a test checks). FP4 and NF4: blocks of 64 with one absmax
    each; LLM.int8: per-row absmax int8 of the fp16 weight."""
    import bitsandbytes.functional as F

    recipe = FORMATS[quantizer].recipe
    if recipe.get("load_in_8bit"):
        codes, scales, _ = F.int8_vectorwise_quant(weight.half())
        return codes.float() * scales.float()[:, None] / 127
    packed, state = F.quantize_4bit(weight.float(), blocksize=64, quant_type=recipe["bnb_4bit_quant_type"],
                                    compress_statistics=False)
    return F.dequantize_4bit(packed, state)
