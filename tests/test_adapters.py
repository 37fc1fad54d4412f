"""LoRA adapters: unlearning through them, saving and loading them as safetensors, and the three ways to serve
them (merged in bf16, merged in fp32, unmerged on top of a base in a format)."""

import copy
import dataclasses

import pytest
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.data.muse import load_corpus
from qunlearn.data.tokenizer import train_tokenizer
from qunlearn.errors import QunlearnError
from qunlearn.evaluate.evaluator import evaluate
from qunlearn.models.checkpoints import load_tokenizer, save_model
from qunlearn.quantize.bitsandbytes import bitsandbytes_dequantized, load_bitsandbytes
from qunlearn.quantize.oracle import rtn_oracle
from qunlearn.registry import FORMATS
from qunlearn.unlearn.adapters import (ADAPTER_WEIGHTS, AdapterDisabled, AdapterSettings, attach, load_adapter,
                                       lora_weights, merged, merged_with_survival, save_adapter, served)
from qunlearn.unlearn.loop import UnlearnSettings, WholeBatches, unlearn

SETTINGS = AdapterSettings(rank=4, alpha=8)


def _llama(vocab: int = 64, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def _trained_adapter(base: torch.nn.Module, out, scale: float = 0.05):
    """An adapter with random non-zero A and B (as after unlearning), saved under `out`."""
    model = attach(base, SETTINGS)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in lora_weights(model).values():
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    save_adapter(model, out)
    return out


@pytest.fixture(scope="module")
def tokenized(corpus_dir, tmp_path_factory):
    corpus = load_corpus(corpus_dir)
    out = tmp_path_factory.mktemp("tok") / "tok"
    train_tokenizer([t for split in corpus.raw.values() for t in split], 400, out)
    return load_tokenizer(out), corpus


def test_a_fresh_adapter_leaves_every_metric_of_the_target_unchanged(tokenized):
    tokenizer, full = tokenized
    corpus = dataclasses.replace(  # a slice of every split: the comparison is exact, so a few items suffice
        full, verbmem=full.verbmem[:3], knowmem={name: qa if name.endswith("icl") else qa[:4] for name, qa in full.knowmem.items()},
        privleak={split: texts[:4] for split, texts in full.privleak.items()})
    target = _llama(len(tokenizer))
    before = evaluate(target, tokenizer, corpus, batch_size=16, mink_k=0.4)
    after = evaluate(attach(copy.deepcopy(target), SETTINGS), tokenizer, corpus, batch_size=16, mink_k=0.4)
    assert after == before


def test_unlearning_through_an_adapter_moves_only_the_adapter(tokenized):
    """The loop unchanged: the fp32 stack's AdamW over the adapter's fp32 weights on a bf16 base."""
    tokenizer, corpus = tokenized
    base = _llama(len(tokenizer)).to(torch.bfloat16)
    frozen = {name: weight.clone() for name, weight in base.state_dict().items()}
    model = attach(base, SETTINGS)
    assert all(p.dtype == torch.float32 for p in lora_weights(model).values())
    settings = UnlearnSettings(method="npo_gdr", lr=1e-3, epochs=1, batch_size=4, max_len=32, alpha=1.0, beta=0.1,
                               precision="fp32", seed=0)
    record = unlearn(model, tokenizer, corpus.raw["forget"][:2], corpus.raw["retain1"][:2], settings)
    assert record["steps"] > 0 and not record["diverged"]
    after = {name.replace(".base_layer", ""): weight for name, weight in model.get_base_model().state_dict().items()
             if "lora_" not in name}
    assert after.keys() == frozen.keys() and all(torch.equal(after[name], frozen[name]) for name in frozen)
    assert any(param.abs().max() > 0 for name, param in lora_weights(model).items() if ".lora_B." in name)


@pytest.mark.parametrize("method", ["npo_gdr", "ga_klr"])
def test_the_reference_of_an_adapter_is_the_model_with_its_adapter_off_not_a_copy(tokenized, method, monkeypatch):
    """NPO's and KLR's frozen reference: the model with the adapter disabled unlearns to exactly the adapter that a
    copied reference gives (a fresh adapter adds zero), without a second copy of the model."""
    tokenizer, corpus = tokenized
    settings = UnlearnSettings(method=method, lr=1e-3, epochs=1, batch_size=4, max_len=32, alpha=1.0, beta=0.1,
                               precision="fp32", seed=0)

    def unlearned_adapter():
        model = attach(_llama(len(tokenizer)).to(torch.bfloat16), SETTINGS)
        unlearn(model, tokenizer, corpus.raw["forget"][:2], corpus.raw["retain1"][:2], settings)
        return {name: param.detach().clone() for name, param in lora_weights(model).items()}

    references = []
    monkeypatch.setattr(AdapterDisabled, "__init__", lambda self, model: (references.append(model),
                                                                          setattr(self, "model", model))[0])
    disabled = unlearned_adapter()
    assert len(references) == 1 and isinstance(references[0], PeftModel)  # the model itself, not a copy
    monkeypatch.setattr(WholeBatches, "frozen_copy", lambda self, model: copy.deepcopy(model).eval().requires_grad_(False))
    copied = unlearned_adapter()
    assert disabled.keys() == copied.keys() and all(torch.equal(disabled[k], copied[k]) for k in copied)


def test_merged_in_fp32_computes_what_the_unmerged_adapter_does(tmp_path):
    adapter = _trained_adapter(_llama(), tmp_path / "adapter")
    batch = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        unmerged = load_adapter(_llama(), adapter)(batch).logits
        merged_fp32 = merged(_llama(), adapter)(batch).logits
    assert not torch.allclose(unmerged, _llama()(batch).logits, atol=1e-3)  # the adapter changes the output
    assert torch.linalg.norm(merged_fp32 - unmerged) <= 1e-5 * torch.linalg.norm(unmerged)


def test_merging_in_bf16_loses_a_delta_below_half_a_bf16_step(tmp_path):
    """One weight of q_proj gets a delta below half a bf16 step of itself and another one above: in bf16 the first
    is rounded away, in fp32 both are kept."""
    model = attach(_llama(), AdapterSettings(rank=1, alpha=1, target_modules=("q_proj",)))
    weight = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    weight.data = weight.data.to(torch.bfloat16).float()  # as the bf16 checkpoint holds it
    half_step = [float(weight[i, 0].abs()) * 2.0 ** -9 for i in (0, 1)]  # bf16 keeps 8 significant bits
    a = model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight
    b = model.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight
    with torch.no_grad():
        a.zero_()
        a[0, 0] = 1.0
        b.zero_()
        b[0, 0], b[1, 0] = 0.4 * half_step[0], 3.0 * half_step[1]
    save_adapter(model, tmp_path / "adapter")
    base = _llama()
    base.model.layers[0].self_attn.q_proj.weight.data = weight.data.clone()
    original = weight.data.to(torch.bfloat16)
    in_bf16 = merged(copy.deepcopy(base).to(torch.bfloat16), tmp_path / "adapter").model.layers[0].self_attn.q_proj.weight
    in_fp32 = merged(copy.deepcopy(base), tmp_path / "adapter").model.layers[0].self_attn.q_proj.weight
    assert in_bf16.dtype == torch.bfloat16
    assert in_bf16[0, 0] == original[0, 0] and in_bf16[1, 0] != original[1, 0]
    assert torch.equal(in_bf16[2:], original[2:])
    assert in_fp32[0, 0] != weight[0, 0].detach() and in_fp32[1, 0] != weight[1, 0].detach()
    # what the merge job records: the share of the delta the merge kept, ⟨M − W, D⟩ / ‖D‖²
    delta = [0.4 * half_step[0], 3.0 * half_step[1]]
    kept_bf16 = merged_with_survival(copy.deepcopy(base).to(torch.bfloat16), tmp_path / "adapter")[1]
    kept_fp32 = merged_with_survival(copy.deepcopy(base), tmp_path / "adapter")[1]
    by_hand = float(in_bf16[1, 0].double() - original[1, 0].double()) * delta[1] / (delta[0] ** 2 + delta[1] ** 2)
    assert kept_bf16["surviving_share"] == pytest.approx(by_hand, rel=1e-4) and abs(by_hand - 1) > 0.1
    assert kept_fp32["surviving_share"] == pytest.approx(1, abs=1e-5)


def _q_proj_input(hidden: int = 64) -> torch.Tensor:
    return torch.randn(3, hidden, generator=torch.Generator().manual_seed(3))


def test_served_on_a_saved_format_is_the_dequantized_base_plus_the_adapter(tmp_path):
    """The hand-made RTN-4 base: every linear weight replaced by its group-wise rounding."""
    adapter = _trained_adapter(_llama(), tmp_path / "adapter")
    base = _llama()
    with torch.no_grad():
        for layer in base.model.layers:
            for linear in (layer.self_attn.q_proj, layer.mlp.down_proj):
                linear.weight.copy_(rtn_oracle(linear.weight, 4, 32, symmetric=False))
    rounded = base.model.layers[1].self_attn.q_proj.weight.detach().clone()
    model = served(base, adapter)
    layer = model.base_model.model.model.layers[1].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    x = _q_proj_input()
    with torch.no_grad():
        expected = x @ rounded.T + (SETTINGS.alpha / SETTINGS.rank) * (x @ a.T @ b.T)
        assert torch.allclose(layer(x), expected, atol=1e-6)


def test_served_on_bitsandbytes_fp4_is_qloras_layout(tmp_path):
    """The base layer stays bitsandbytes' FP4 layer (its weights FP4's), and the adapter's output is added to
    that layer's own output."""
    import bitsandbytes.functional as F

    adapter = _trained_adapter(_llama(), tmp_path / "adapter")
    save_model(_llama(), tmp_path / "base")
    model = served(load_bitsandbytes(tmp_path / "base", FORMATS["bnb-fp4"]), adapter)
    layer = model.base_model.model.model.layers[1].self_attn.q_proj
    assert type(layer.base_layer).__name__ == "Linear4bit"
    held = F.dequantize_4bit(layer.base_layer.weight.data, layer.base_layer.weight.quant_state)
    assert torch.equal(held, bitsandbytes_dequantized(_llama().model.layers[1].self_attn.q_proj.weight.detach(), "bnb-fp4"))
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    x = _q_proj_input()
    with torch.no_grad():
        expected = layer.base_layer(x) + (SETTINGS.alpha / SETTINGS.rank) * (x @ a.T @ b.T)
        assert torch.allclose(layer(x), expected, atol=1e-6)
        assert not torch.allclose(layer(x), layer.base_layer(x), atol=1e-3)


def test_a_4_bit_adapter_is_rounded_like_the_rtn_format(tmp_path):
    adapter = _trained_adapter(_llama(), tmp_path / "adapter")
    full = lora_weights(load_adapter(_llama(), adapter))
    rounded = lora_weights(served(_llama(), adapter, {"bits": 4, "group_size": 32, "symmetric": False}))
    for name, weight in full.items():
        rows, cols = weight.shape
        group = 32 if cols % 32 == 0 else cols  # B's input is the rank: one group per row
        assert torch.allclose(rounded[name], rtn_oracle(weight.detach(), 4, group, symmetric=False), atol=1e-6), name
        assert not torch.equal(rounded[name], weight)


def test_adapters_are_saved_and_loaded_as_safetensors_only(tmp_path):
    adapter = _trained_adapter(_llama(), tmp_path / "adapter")
    assert sorted(p.name for p in adapter.iterdir()) == ["README.md", "adapter_config.json", ADAPTER_WEIGHTS]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    (pickled / "adapter_model.bin").write_bytes(b"not read")
    with pytest.raises(QunlearnError, match="only a pickled adapter_model.bin, which is never loaded") as error:
        load_adapter(_llama(), pickled)
    assert "safe_serialization=True" in error.value.fix
    (pickled / ADAPTER_WEIGHTS).write_bytes(b"\x00" * 16)
    with pytest.raises(QunlearnError, match="cannot be read"):
        load_adapter(_llama(), pickled)
    save_file({"base_model.model.lm_head.lora_A.weight": torch.zeros(4, 64)}, pickled / ADAPTER_WEIGHTS)
    with pytest.raises(QunlearnError, match="does not fit this base model"):
        load_adapter(_llama(), pickled)
