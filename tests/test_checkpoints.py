import pytest
import torch

from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import check_checkpoint, load_model, save_model


def test_round_trip(tiny_llama, tmp_path):
    save_model(tiny_llama, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert torch.equal(loaded.lm_head.weight, tiny_llama.lm_head.weight)


def test_pickle_checkpoint_is_refused(tiny_llama, tmp_path):
    save_model(tiny_llama, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save({}, tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(QunlearnError, match="pickle files .*pytorch_model.bin.*never loads"):
        load_model(tmp_path / "m")


def test_truncated_safetensors_is_named(tiny_llama, tmp_path):
    save_model(tiny_llama, tmp_path / "m")
    shard = tmp_path / "m" / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(QunlearnError, match="corrupt or truncated checkpoint file .*model.safetensors"):
        check_checkpoint(tmp_path / "m")
