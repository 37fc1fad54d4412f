import pytest
import torch

from qunlearn.checkpoints import save_model
from qunlearn.errors import QunlearnError
from qunlearn.quantization import check_group_size, load_bitsandbytes, load_dequantized, quantize_and_save, rtn_oracle


@pytest.fixture
def saved_llama(tiny_llama, tmp_path):
    save_model(tiny_llama, tmp_path / "fp")
    return tmp_path / "fp"


@pytest.mark.parametrize("bits,symmetric", [(4, False), (8, False), (4, True)])
def test_llmcompressor_rtn_equals_the_oracle_bit_for_bit(tiny_llama, saved_llama, tmp_path, bits, symmetric):
    quantize_and_save(saved_llama, tmp_path / "q", "rtn", bits, 32, symmetric)
    quantized = dict(load_dequantized(tmp_path / "q").named_modules())
    checked = 0
    for name, module in tiny_llama.named_modules():
        if isinstance(module, torch.nn.Linear):
            expected = module.weight if name == "lm_head" else rtn_oracle(module.weight.detach(), bits, 32, symmetric)
            assert torch.equal(quantized[name].weight, expected), name
            checked += 1
    assert checked == 2 * 7 + 1


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

    model = load_bitsandbytes(saved_llama, "bnb-fp4")
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        fp, q = tiny_llama(input_ids=ids).logits, model(input_ids=ids).logits
    assert not torch.equal(fp, q) and torch.allclose(fp, q, atol=0.5)
