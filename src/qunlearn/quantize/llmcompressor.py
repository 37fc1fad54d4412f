"""The llmcompressor backend (docs/paper.md §5): RTN, GPTQ, AWQ, NVFP4 and MXFP4, each format's recipe a function
here, quantized and written as a compressed-tensors checkpoint; evaluation loads it dequantized to plain float
weights, so one evaluation path serves every saved format."""

from dataclasses import dataclass
from pathlib import Path

import torch

from qunlearn.errors import QunlearnError
from qunlearn.io import atomic_dir
from qunlearn.models.checkpoints import load_model, load_tokenizer
from qunlearn.registry import Format, check_format, resolve


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

    from qunlearn.data.batches import encode_documents, pack

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
