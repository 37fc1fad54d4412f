"""GGUF, the file llama.cpp, Ollama and LM Studio serve: a full-precision checkpoint written as a GGUF file with the
`gguf` package, quantized by llama.cpp's own quantizer (`llama_model_quantize` through llama-cpp-python; qunlearn
never re-implements a block format), and read back dequantized by transformers' GGUF loader into the evaluation
path every other format takes. Quantizing needs the `gguf` extra (`make install-gguf`), which builds llama.cpp."""

import ctypes
import tempfile
from pathlib import Path

import gguf
import torch

from qunlearn.errors import QunlearnError
from qunlearn.io import atomic_dir, read_json
from qunlearn.models.checkpoints import default_device, load_state, load_tokenizer
from qunlearn.models.files import model_config, tokenizer_vocabulary
from qunlearn.registry import FORMATS, Format

GGUF_FILE = "model.gguf"
INSTALL = "install the GGUF extra: make install-gguf (builds llama.cpp through llama-cpp-python, about 8 min)"


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise QunlearnError("quantizing to GGUF needs llama-cpp-python, which is not installed", INSTALL) from None
    return llama_cpp


def llama_rope_permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Q and K rows reordered for llama.cpp's rotary layout: transformers' Llama rotates the two halves of each
    head's dimensions, llama.cpp rotates interleaved pairs (llama.cpp's converter does the same; transformers' GGUF
    loader undoes it)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(model_dir: str | Path, tokenizer_dir: str | Path, path: str | Path) -> None:
    """A Llama checkpoint as an fp32 GGUF file: architecture, hyperparameters, the tokenizer and every tensor."""
    config = model_config(model_dir)
    if config.get("model_type") != "llama":
        raise QunlearnError(f"{model_dir} is a {config.get('model_type')!r} model; qunlearn writes GGUF for Llama models",
                            "leave the gguf-* formats out for this model")
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config.get("rope_parameters", config).get("rope_theta", 10000.0))
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer_dir)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    for name, tensor in load_state(model_dir).items():
        tensor = tensor.float()
        if name.endswith("q_proj.weight"):
            tensor = llama_rope_permute(tensor, heads)
        elif name.endswith("k_proj.weight"):
            tensor = llama_rope_permute(tensor, kv_heads)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_tokenizer(writer, tokenizer_dir: str | Path) -> None:
    """A byte-level BPE tokenizer (GPT-2's kind, the embedded benchmark's) as llama.cpp's `gpt2` vocabulary: tokens
    by id, special tokens marked as control tokens, merges and the BOS/EOS/PAD ids."""
    spec = read_json(Path(tokenizer_dir) / "tokenizer.json")
    if spec.get("model", {}).get("type") != "BPE" or spec["model"].get("byte_fallback"):
        raise QunlearnError(f"the tokenizer at {tokenizer_dir} is not a byte-level BPE tokenizer; qunlearn writes GGUF "
                            "vocabularies of that kind only (SentencePiece ones, as Llama-2's, need llama.cpp's converter)",
                            "leave the gguf-* formats out for this corpus, or convert with llama.cpp's convert_hf_to_gguf.py")
    vocabulary = tokenizer_vocabulary(tokenizer_dir)
    tokens = sorted(vocabulary, key=vocabulary.get)
    special = {added["content"] for added in spec.get("added_tokens", []) if added.get("special")}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    gguf.SpecialVocab(Path(tokenizer_dir), load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)


def quantize_gguf(model_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path, quantizer: str,
                  threads: int = 1) -> None:
    """Write the checkpoint as fp32 GGUF, quantize it with llama.cpp's quantizer to the format's file type (its
    spec's recipe), and save the quantized file (with the tokenizer beside it, as the other saved formats)."""
    llama_cpp = _llama_cpp()
    file_type = FORMATS[quantizer].recipe
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type}")
    params.nthread = threads
    with atomic_dir(out_dir) as staging, tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
        full = Path(scratch) / "f32.gguf"
        write_gguf(model_dir, tokenizer_dir, full)
        status = llama_cpp.llama_model_quantize(str(full).encode(), str(staging / GGUF_FILE).encode(),
                                                ctypes.byref(params))
        if status != 0:
            raise QunlearnError(f"llama.cpp could not quantize {model_dir} to {file_type} (status {status})",
                                "see the rule's log for llama.cpp's message")
        load_tokenizer(tokenizer_dir).save_pretrained(staging)


def load_gguf(quantized_dir: str | Path, fmt: Format | None = None) -> torch.nn.Module:
    """A quantized GGUF file dequantized to fp32 weights by transformers' GGUF loader (the `gguf` package's
    dequantization of each block type; the file names its own types)."""
    from transformers import AutoModelForCausalLM

    path = Path(quantized_dir)
    if not (path / GGUF_FILE).is_file():
        raise QunlearnError(f"{path} has no {GGUF_FILE}", "delete the folder and re-run: Snakemake rebuilds it")
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=GGUF_FILE, dtype=torch.float32,
                                                 device_map={"": str(default_device())}, trust_remote_code=False)
    return model.eval()


def tensor_types(path: str | Path) -> dict[str, str]:
    """Each tensor's GGML type in a GGUF file (Q4_K, Q6_K, F32, ...)."""
    return {tensor.name: tensor.tensor_type.name for tensor in gguf.GGUFReader(str(path)).tensors}
