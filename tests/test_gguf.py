"""GGUF: qunlearn's file loads in llama.cpp and in transformers, and llama.cpp's quantizer gives what was asked."""

from collections import Counter

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from qunlearn.analysis.mechanism import quantized_weights
from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import save_model
from qunlearn.quantize.gguf import GGUF_FILE, load_gguf, quantize_gguf, tensor_types, write_gguf


def _llama(tokenizer_dir, hidden=64, intermediate=128):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def saved(tmp_path, toy_tokenizer_dir):
    model = _llama(toy_tokenizer_dir)
    save_model(model, tmp_path / "fp", dtype="fp32")
    return model, tmp_path / "fp"


def test_an_fp32_gguf_loads_back_in_transformers_with_every_weight_equal(saved, toy_tokenizer_dir, tmp_path):
    """Grouped-query attention (4 heads, 2 KV heads) included: the Q/K reordering for llama.cpp is undone exactly."""
    model, folder = saved
    (tmp_path / "gguf").mkdir()
    write_gguf(folder, toy_tokenizer_dir, tmp_path / "gguf" / GGUF_FILE)
    loaded = load_gguf(tmp_path / "gguf").state_dict()
    expected = model.state_dict()
    assert loaded.keys() == expected.keys()
    for name, weight in expected.items():
        assert torch.equal(loaded[name], weight), name


def test_llama_cpp_computes_the_same_logits_from_qunlearns_gguf(llama_cpp, saved, toy_tokenizer_dir, tmp_path):
    model, folder = saved
    write_gguf(folder, toy_tokenizer_dir, tmp_path / "f32.gguf")
    tokens = [1, 17, 42, 99, 123, 7, 250, 31]
    llm = llama_cpp.Llama(model_path=str(tmp_path / "f32.gguf"), n_ctx=64, n_threads=1, logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        theirs = np.array(llm.scores[: len(tokens)])
    finally:
        llm.close()
    with torch.no_grad():
        ours = model(torch.tensor([tokens])).logits[0].numpy()
    assert np.abs(theirs - ours).max() < 1e-3 * np.abs(ours).max()


def test_q8_0_dequantized_weights_are_within_q8_0s_block_error(llama_cpp, saved, toy_tokenizer_dir, tmp_path):
    """Q8_0: blocks of 32 weights along a row, codes round(w / d) with d = absmax / 127, stored with d rounded to
    fp16: each weight within half a step plus 127 times the scale's fp16 rounding of the original."""
    model, folder = saved
    quantize_gguf(folder, toy_tokenizer_dir, tmp_path / "q8", "gguf-q8_0")
    assert set(tensor_types(tmp_path / "q8" / GGUF_FILE).values()) == {"Q8_0", "F32"}
    loaded = quantized_weights(load_gguf(tmp_path / "q8").state_dict())
    for name, original in quantized_weights(model.state_dict()).items():
        blocks, dequantized = original.reshape(-1, 32), loaded[name].reshape(-1, 32)
        step = blocks.abs().amax(dim=1, keepdim=True) / 127
        bound = 0.5 * step + 127 * (step - step.half().float()).abs()
        assert ((dequantized - blocks).abs() <= bound * (1 + 1e-5)).all(), name
        assert not torch.equal(dequantized, blocks), name


@pytest.mark.parametrize("quantizer,types", [("gguf-q4_k_m", {"Q4_K", "Q6_K"}), ("gguf-q5_k_m", {"Q5_K", "Q6_K"}),
                                             ("gguf-q4_0", {"Q4_0", "Q6_K"})])
def test_a_quantized_file_has_the_tensor_types_asked_for(llama_cpp, toy_tokenizer_dir, tmp_path, quantizer, types):
    """k-quants need rows of 256: a hidden-256 model. The _M mixes keep attn_v and ffn_down of some layers at Q6_K, as
    llama.cpp chooses; the output layer is Q6_K in every mix; norms stay F32."""
    save_model(_llama(toy_tokenizer_dir, hidden=256, intermediate=512), tmp_path / "fp", dtype="fp32")
    quantize_gguf(tmp_path / "fp", toy_tokenizer_dir, tmp_path / "q", quantizer)
    found = tensor_types(tmp_path / "q" / GGUF_FILE)
    decoder = Counter(t for name, t in found.items() if name.startswith("blk.") and not name.endswith("norm.weight"))
    assert set(decoder) <= types and decoder.most_common(1)[0][0] == sorted(types)[0]
    assert found["output.weight"] == "Q6_K" and {t for n, t in found.items() if n.endswith("norm.weight")} == {"F32"}


def test_a_sentencepiece_tokenizer_is_refused_with_the_way_out(saved, tmp_path, toy_tokenizer_dir):
    import json
    import shutil

    _, folder = saved
    shutil.copytree(toy_tokenizer_dir, tmp_path / "spm")
    spec = json.loads((tmp_path / "spm/tokenizer.json").read_text())
    spec["model"]["byte_fallback"] = True  # SentencePiece-style BPE, as Llama-2's
    (tmp_path / "spm/tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(QunlearnError, match="(?s)not a byte-level BPE tokenizer.*convert_hf_to_gguf.py"):
        write_gguf(folder, tmp_path / "spm", tmp_path / "x.gguf")
