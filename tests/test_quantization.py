import pytest
import torch
from transformers import AutoModelForCausalLM

from qunlearn.analysis.mechanism import quantization_steps, quantized_weights
from qunlearn.data.batches import collate, encode_documents, pack
from qunlearn.data.muse import load_corpus
from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import load_state, load_tokenizer, save_model
from qunlearn.models.training import build_llama, train_lm
from qunlearn.quantize.bitsandbytes import bitsandbytes_dequantized, load_bitsandbytes
from qunlearn.quantize.llmcompressor import Calibration, check_group_size, load_dequantized, quantize, quantize_and_save
from qunlearn.quantize.oracle import rtn_oracle
from qunlearn.registry import BACKENDS, FIGURES, FORMATS, resolve
from qunlearn.unlearn.losses import mean_nll


@pytest.fixture
def saved_llama(tiny_llama, tmp_path):
    save_model(tiny_llama, tmp_path / "fp")
    return tmp_path / "fp"


@pytest.mark.parametrize("bits,symmetric", [(4, False), (8, False), (4, True)])
def test_llmcompressor_rtn_equals_the_oracle_bit_for_bit(tiny_llama, saved_llama, toy_tokenizer_dir, tmp_path, bits,
                                                         symmetric):
    quantize_and_save(saved_llama, toy_tokenizer_dir, tmp_path / "q", "rtn", bits, 32, symmetric)
    quantized = dict(load_dequantized(tmp_path / "q").named_modules())
    checked = 0
    for name, module in tiny_llama.named_modules():
        if isinstance(module, torch.nn.Linear):
            expected = module.weight if name == "lm_head" else rtn_oracle(module.weight.detach(), bits, 32, symmetric)
            assert torch.equal(quantized[name].weight, expected), name
            checked += 1
    assert checked == 2 * 7 + 1


def test_every_figure_and_quantizer_in_the_registry_is_implemented():
    by_backend = {name: {fmt.name for fmt in FORMATS.values() if fmt.backend == name} for name in BACKENDS}
    assert by_backend["llmcompressor"] == {"rtn", "gptq", "awq", "nvfp4", "mxfp4"}
    assert all(name.startswith("bnb-") for name in by_backend["bitsandbytes"]) and len(by_backend["bitsandbytes"]) == 3
    assert {f"gguf-{fmt.recipe.lower()}" for fmt in FORMATS.values() if fmt.backend == "gguf"} == by_backend["gguf"]
    assert {name for name, b in BACKENDS.items() if b.saved} == {"llmcompressor", "gguf"}
    for backend in BACKENDS.values():
        resolve(backend.load)
        if backend.saved:
            resolve(backend.quantize)
    for fmt in FORMATS.values():
        if fmt.backend == "llmcompressor":
            assert callable(resolve(fmt.recipe)), fmt.name
    assert all(callable(resolve(figure.impl)) for figure in FIGURES.values())


@pytest.mark.parametrize("quantizer,block", [("nvfp4", 16), ("mxfp4", 32)])
def test_fp4_checkpoints_reload_as_the_in_memory_fake_quantized_weights(saved_llama, toy_tokenizer_dir, tmp_path,
                                                                        quantizer, block):
    """NVFP4 and MXFP4 saved compressed and reloaded dequantized hold compressed-tensors' own fake quantization of
    the in-memory model: bit for bit for MXFP4 (power-of-two scales: exact in bf16), rounded once to bf16 for NVFP4
    (compressed-tensors decompresses it in bf16)."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    from qunlearn.models.checkpoints import load_model

    model, tokenizer = load_model(saved_llama), load_tokenizer(toy_tokenizer_dir)
    quantize(model, tokenizer, quantizer, 4, block, None)
    quantize_and_save(saved_llama, toy_tokenizer_dir, tmp_path / "q", quantizer, 4, block, None)
    reloaded = dict(load_dequantized(tmp_path / "q").named_modules())
    checked = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            fake = fake_quantize(module.weight, module.weight_scale, getattr(module, "weight_zero_point", None),
                                 module.quantization_scheme.weights, global_scale=getattr(module, "weight_global_scale", None))
            expected = fake if quantizer == "mxfp4" else fake.to(torch.bfloat16).float()
            weight = reloaded[name].weight
            assert weight.dtype == torch.float32 and torch.equal(weight, expected.detach()), name
            assert not torch.equal(weight, module.weight), name
            blocks = weight.reshape(-1, block)
            assert max(len(torch.unique(b.abs())) for b in blocks) <= 8, name  # FP4 E2M1: 8 magnitudes
            checked += 1
    assert checked == 2 * 7 and torch.equal(reloaded["lm_head"].weight, model.lm_head.weight)


def test_oracle_codes_lie_on_the_grid():
    weight = torch.randn(4, 64)
    fake = rtn_oracle(weight, 4, 32, symmetric=False)
    for group in fake.reshape(4, 2, 32).reshape(-1, 32):
        assert len(torch.unique(group)) <= 16
    assert (fake - weight).abs().max() < (weight.max() - weight.min()) / 15


def test_group_size_must_divide_widths(tiny_llama):
    with pytest.raises(QunlearnError, match="group size 48 does not divide"):
        check_group_size(tiny_llama, 48)


def test_bitsandbytes_fp4_quantizes_on_load_and_keeps_lm_head(saved_llama, tiny_llama):
    import bitsandbytes as bnb

    model = load_bitsandbytes(saved_llama, FORMATS["bnb-fp4"])
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        fp, q = tiny_llama(input_ids=ids).logits, model(input_ids=ids).logits
    assert not torch.equal(fp, q) and torch.allclose(fp, q, atol=0.5)


@pytest.mark.parametrize("quantizer", ["bnb-fp4", "bnb-nf4", "bnb-int8"])
def test_the_mechanism_s_bitsandbytes_weights_are_those_the_evaluation_loads(saved_llama, tiny_llama, quantizer):
    import bitsandbytes.functional as F

    loaded = load_bitsandbytes(saved_llama, FORMATS[quantizer]).model.layers[0].mlp.down_proj.weight
    if quantizer == "bnb-int8":
        evaluated = loaded.CB.float() * loaded.SCB.float()[:, None] / 127
    else:
        evaluated = F.dequantize_4bit(loaded.data, loaded.quant_state)
    weight = tiny_llama.model.layers[0].mlp.down_proj.weight.detach()
    measured = bitsandbytes_dequantized(weight, quantizer)
    assert torch.equal(measured, evaluated) and not torch.equal(measured, weight)
    assert len(torch.unique(measured[0, :64])) <= (255 if quantizer == "bnb-int8" else 16)


@pytest.fixture(scope="module")
def trained(corpus_dir, toy_tokenizer_dir, tmp_path_factory):
    """A small model trained on the toy corpus: quantization error on a random model says little."""
    corpus, tokenizer = load_corpus(corpus_dir), load_tokenizer(toy_tokenizer_dir)
    model = build_llama(len(tokenizer), 64, 2, 2, 128, 128, tokenizer, seed=0)
    train_lm(model, tokenizer, corpus.raw["forget"] + corpus.raw["retain1"], epochs=8, batch_size=4, lr=3e-3,
                       train_len=128, warmup_steps=4, seed=0)
    out = tmp_path_factory.mktemp("trained") / "fp"
    save_model(model, out)
    return out, toy_tokenizer_dir, corpus, tokenizer, tmp_path_factory.mktemp("quantized")


def _quantize(trained, quantizer, bits, symmetric, name=""):
    model_dir, tokenizer_dir, corpus, _, root = trained
    out = root / f"{quantizer}{bits}{'s' if symmetric else 'a'}{name}"
    if not out.exists():
        quantize_and_save(model_dir, tokenizer_dir, out, quantizer, bits, 32, symmetric, corpus.raw["retain2"],
                          Calibration(samples=8, seq_len=64), seed=0)
    return out


@torch.no_grad()
def _nll(model, tokenizer, texts) -> float:
    chunks = pack(encode_documents(tokenizer, texts), 128, tokenizer.bos_token_id)
    batch = collate(chunks, tokenizer.pad_token_id)
    return mean_nll(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float(), batch.labels).item()


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_8_bit_gptq_and_awq_keep_the_nll_on_held_out_text(trained, quantizer):
    model_dir, _, corpus, tokenizer, _ = trained
    full = _nll(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer,
                corpus.raw["holdout"])
    quantized = _nll(load_dequantized(_quantize(trained, quantizer, 8, False)), tokenizer, corpus.raw["holdout"])
    assert abs(quantized - full) < 0.005 * full, (quantized, full)


def test_4_bit_gptq_is_no_worse_than_rtn_on_the_calibration_text(trained):
    _, _, corpus, tokenizer, _ = trained
    rtn = _nll(load_dequantized(_quantize(trained, "rtn", 4, True)), tokenizer, corpus.raw["retain2"])
    gptq = _nll(load_dequantized(_quantize(trained, "gptq", 4, True)), tokenizer, corpus.raw["retain2"])
    assert gptq <= rtn, (gptq, rtn)


@pytest.mark.parametrize("quantizer,symmetric", [("rtn", False), ("gptq", True), ("gptq", False)])
def test_every_dequantized_weight_lies_on_its_stored_grid(trained, quantizer, symmetric):
    out = _quantize(trained, quantizer, 4, symmetric)
    dequantized = load_dequantized(out).state_dict()
    steps, weights = quantization_steps(dequantized), quantized_weights(dequantized)
    assert set(weights) == set(steps) and len(weights) == 2 * 7
    for name, weight in weights.items():
        codes = weight / steps[name].repeat_interleave(32, dim=1)  # (code - zero point), an integer
        assert torch.allclose(codes, codes.round(), atol=1e-3), name
        span = codes.round().reshape(weight.shape[0], -1, 32)
        assert (span.amax(-1) - span.amin(-1)).max() <= 15, name  # at most 16 levels per group


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_two_runs_give_identical_weights(trained, quantizer):
    first = load_state(_quantize(trained, quantizer, 4, False))
    again = load_state(_quantize(trained, quantizer, 4, False, name="-again"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_a_quantized_checkpoint_loads_in_plain_transformers(trained):
    out = _quantize(trained, "gptq", 4, True)
    plain = AutoModelForCausalLM.from_pretrained(out)  # compressed-tensors, as transformers and vLLM read it
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, load_dequantized(out)(input_ids=ids).logits, atol=1e-4)
