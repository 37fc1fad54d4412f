"""Loading models and tokenizers safely: safetensors only, never pickle, never remote code."""

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from qunlearn.errors import QunlearnError
from qunlearn.io import atomic_dir, write_json
from qunlearn.models.files import check_checkpoint
from qunlearn.registry import FORMATS, backend, resolve

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(path: str | Path, dtype: str = "fp32", **kwargs) -> torch.nn.Module:
    check_checkpoint(path)
    kwargs.setdefault("device_map", {"": str(default_device())})
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[dtype], use_safetensors=True, trust_remote_code=False, **kwargs
    )
    return model.eval()


def load_in_format(checkpoint: str | Path, quantizer: str | None) -> torch.nn.Module:
    """A checkpoint as evaluation and the mechanism see it: as saved (quantizer None), or loaded in the format by
    its backend (registry.Backend.load): a quantized checkpoint dequantized, or the full-precision one quantized on
    load."""
    if quantizer is None:
        return load_model(checkpoint, "fp32")
    return resolve(backend(quantizer).load)(checkpoint, FORMATS[quantizer])


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint, as stored (no model is built)."""
    return {name: tensor for shard in check_checkpoint(path) for name, tensor in load_file(shard).items()}


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.bos_token_id is None:
        raise QunlearnError(f"tokenizer at {path} has no BOS token", "MUSE's metrics prepend BOS: use a tokenizer that defines one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # Llama-2 has no PAD; padding is masked out anyway.
    return tokenizer


def save_model(model: torch.nn.Module, out_dir: str | Path, dtype: str | None = None,
               extra_json: dict[str, object] | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Save as safetensors, with any `extra_json` files (a training record) in the same atomic step; `state_dict`
    gives the weights where the model holds only a shard of them (sharding.ShardedModels.save)."""
    if dtype is not None:
        model = model.to(DTYPES[dtype])
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True, state_dict=state_dict)
        for name, obj in (extra_json or {}).items():
            write_json(staging / name, obj)
