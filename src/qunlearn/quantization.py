"""Two of the quantization backends of registry.BACKENDS (docs/paper.md §5); GGUF's is gguf_format.py.

- llmcompressor quantizes (RTN, GPTQ, AWQ, NVFP4, MXFP4, each format's recipe a function here) and writes a
  compressed-tensors checkpoint; evaluation loads it dequantized to plain float weights, so one evaluation path
  serves every saved format;
- bitsandbytes formats (FP4, NF4, LLM.int8) are applied while loading the full-precision checkpoint, as the paper's
  code evaluated; never saved, since bitsandbytes' 4-bit save and reload is broken here.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import load_model, load_tokenizer
from .errors import QunlearnError
from .io import atomic_dir
from .registry import FORMATS, Format, check_format, resolve


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


def _scheme(bits: int, group_size: int, symmetric: bool) -> dict:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    weights = QuantizationArgs(num_bits=bits, type="int", strategy="group", group_size=group_size, symmetric=symmetric)
    return {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}


# The llmcompressor formats' recipes, each named by its spec's `recipe`: (bits, group_size, symmetric) -> modifiers.
def rtn_recipe(bits: int, group_size: int, symmetric: bool) -> list:
    from llmcompressor.modifiers.quantization import QuantizationModifier

    return [QuantizationModifier(config_groups=_scheme(bits, group_size, symmetric), ignore=["lm_head"])]


def gptq_recipe(bits: int, group_size: int, symmetric: bool) -> list:
    from llmcompressor.modifiers.gptq import GPTQModifier

    return [GPTQModifier(config_groups=_scheme(bits, group_size, symmetric), ignore=["lm_head"])]


def awq_recipe(bits: int, group_size: int, symmetric: bool) -> list:
    """AWQ only rescales; RTN then rounds."""
    from llmcompressor.modifiers.transform.awq import AWQModifier

    _allow_awq_without_accelerator()
    return [AWQModifier(), *rtn_recipe(bits, group_size, symmetric)]


def _fp4_recipe(scheme: str) -> list:
    """compressed-tensors' own weight-only scheme for a microscaling FP4 format (its block size is part of it)."""
    from llmcompressor.modifiers.quantization import QuantizationModifier

    return [QuantizationModifier(scheme=scheme, targets=["Linear"], ignore=["lm_head"])]


def nvfp4_recipe(bits: int, group_size: int, symmetric: None) -> list:
    return _fp4_recipe("NVFP4A16")


def mxfp4_recipe(bits: int, group_size: int, symmetric: None) -> list:
    return _fp4_recipe("MXFP4A16")


@dataclass(frozen=True)
class Calibration:
    """GPTQ's and AWQ's calibration text: never forget text; the same samples in the same order every run."""
    samples: int
    seq_len: int


def calibration_dataset(tokenizer, texts: list[str], calibration: Calibration):
    """The first `samples` chunks of `seq_len` tokens (BOS first) of the texts in their given order."""
    from datasets import Dataset

    from .data import encode_documents, pack

    chunks = [c for c in pack(encode_documents(tokenizer, texts), calibration.seq_len, tokenizer.bos_token_id)
              if len(c) == calibration.seq_len][: calibration.samples]
    if len(chunks) < calibration.samples:
        raise QunlearnError(f"the calibration text gives {len(chunks)} chunks of {calibration.seq_len} tokens, "
                            f"fewer than quantization.calibration.samples {calibration.samples}",
                            "lower quantization.calibration.samples or seq_len, or calibrate on more text")
    return Dataset.from_dict({"input_ids": chunks, "attention_mask": [[1] * len(c) for c in chunks]})


def _allow_awq_without_accelerator() -> None:
    """llmcompressor's AWQ pins its cached activations, which raises without an accelerator (docs/paper.md §5);
    pinning only speeds host-to-device copies, so on a CPU-only machine, and only there, it is a no-op."""
    from llmcompressor.pipelines.cache import IntermediatesCache

    if not torch.accelerator.is_available():
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def check_group_size(model: torch.nn.Module, group_size: int) -> None:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head") and module.in_features % group_size:
            raise QunlearnError(
                f"group size {group_size} does not divide the input width {module.in_features} of {name}",
                "set quantization.group_size to a divisor of the model's hidden and intermediate sizes",
            )


def quantize(model: torch.nn.Module, tokenizer, quantizer: str, bits: int, group_size: int, symmetric: bool | None,
             calibration_texts: list[str] = (), calibration: Calibration | None = None, seed: int = 0) -> None:
    """Quantize a full-precision model in place with llmcompressor (its weights stay in float, with the
    quantization parameters attached). GPTQ and AWQ calibrate on `calibration_texts`, unshuffled and seeded, so
    the same inputs give the same weights."""
    from llmcompressor import oneshot

    fmt = check_format(quantizer, bits)
    check_group_size(model, group_size)
    data = {}
    if fmt.calibrated:
        if calibration is None:
            raise QunlearnError(f"{quantizer} needs calibration text", "set quantization.calibration")
        data = dict(dataset=calibration_dataset(tokenizer, calibration_texts, calibration),
                    num_calibration_samples=calibration.samples, max_seq_length=calibration.seq_len,
                    shuffle_calibration_samples=False)
    torch.manual_seed(seed)
    oneshot(model=model, processor=tokenizer, recipe=resolve(fmt.recipe)(bits, group_size, symmetric), **data)


def quantize_and_save(model_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path, quantizer: str, bits: int,
                      group_size: int, symmetric: bool | None, calibration_texts: list[str] = (),
                      calibration: Calibration | None = None, seed: int = 0) -> None:
    """`quantize` a full-precision checkpoint and save it compressed, with its tokenizer (so that transformers and
    vLLM load it as it is)."""
    model, tokenizer = load_model(model_dir, "fp32"), load_tokenizer(tokenizer_dir)
    quantize(model, tokenizer, quantizer, bits, group_size, symmetric, calibration_texts, calibration, seed)
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging, save_compressed=True)
        tokenizer.save_pretrained(staging)


def load_dequantized(quantized_dir: str | Path, fmt: Format | None = None) -> torch.nn.Module:
    """Load a compressed-tensors checkpoint as ordinary fp32 Linear weights (its format is in its own config).
    compressed-tensors decompresses NVFP4 in bf16 (the fake-quantized weights rounded once to bf16, a test
    checks), so the model is cast back to fp32, which is exact."""
    from transformers import CompressedTensorsConfig

    return load_model(quantized_dir, "fp32", quantization_config=CompressedTensorsConfig(dequantize=True)).float()


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
