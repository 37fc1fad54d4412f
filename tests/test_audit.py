"""Audit mode's checks: every bad input fails when the workflow starts, naming the config key and the fix."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from qunlearn.analysis.mechanism import check_same_shapes, update_location
from qunlearn.audit import AuditedModel, AuditTarget, audited_models
from qunlearn.errors import QunlearnError
from qunlearn.models.files import tensor_shapes

GRID = ["npo_gdr_lr1e-4_bf16_s0"]
KEY = "corpora.toy.unlearned.mine"


def _llama(vocab_size, intermediate=128, tied=False):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=intermediate, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tied)
    return LlamaForCausalLM(config)


@pytest.fixture
def target(tmp_path, toy_tokenizer_dir):
    """A target folder (fp32, one file) and the corpus' tokenizer."""
    vocab = len(AutoTokenizer.from_pretrained(toy_tokenizer_dir))
    _llama(vocab).save_pretrained(tmp_path / "target")
    return AuditTarget(str(tmp_path / "target"), str(toy_tokenizer_dir)), vocab


def _audit(audit_target, entry, label="mine", target_seeds=(0,)):
    audit_targets = {("toy", seed): audit_target for seed in target_seeds}
    return audited_models({"toy": {"unlearned": {label: entry}}}, audit_targets, {"toy": list(target_seeds)},
                          GRID)["toy"][label]


def test_a_resharded_bf16_copy_with_its_tokenizer_passes(target, tmp_path, toy_tokenizer_dir):
    audit_target, vocab = target
    folder = tmp_path / "mine"
    _llama(vocab).to(torch.bfloat16).save_pretrained(folder, max_shard_size="100KB")
    shutil.copy(toy_tokenizer_dir / "tokenizer.json", folder)
    assert len(list(folder.glob("*.safetensors"))) > 1 and (folder / "model.safetensors.index.json").is_file()
    assert _audit(audit_target, str(folder)) == AuditedModel("mine", str(folder), tokenizer=str(folder))
    entry = {"path": str(folder), "method": "simnpo", "lr": 2e-5, "stack": "bf16"}
    assert _audit(audit_target, entry) == AuditedModel("mine", str(folder), str(folder), "simnpo", 2e-5, "bf16")
    assert _audit(audit_target, {**entry, "target_seed": 2}, target_seeds=(1, 2)).target_seed == 2
    assert _audit(audit_target, entry, target_seeds=(1, 2)).target_seed == 1  # the corpus' first target
    with pytest.raises(QunlearnError, match=f"{KEY}: target_seed 3 is not a target of this corpus .*\\[1, 2\\]"):
        _audit(audit_target, {**entry, "target_seed": 3}, target_seeds=(1, 2))


def test_without_a_tokenizer_beside_it_the_corpus_tokenizer_is_used_and_a_tied_head_is_accepted(target, tmp_path):
    audit_target, vocab = target
    _llama(vocab, tied=True).save_pretrained(tmp_path / "tied")
    assert "lm_head.weight" not in tensor_shapes(tmp_path / "tied")
    assert _audit(audit_target, str(tmp_path / "tied")).tokenizer == audit_target.tokenizer


def test_a_missing_folder_is_named_with_its_key(target, tmp_path):
    with pytest.raises(QunlearnError, match=f"{KEY}: checkpoint folder .*nowhere does not exist"):
        _audit(target[0], str(tmp_path / "nowhere"))


def test_a_bin_only_checkpoint_is_refused(target, tmp_path):
    folder = tmp_path / "pickled"
    model = _llama(target[1])
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # as older transformers saved
    with pytest.raises(QunlearnError, match=f"{KEY}: .*no .safetensors weights .*pytorch_model.bin.*never loads"):
        _audit(target[0], str(folder))


def test_an_index_naming_a_missing_shard_is_refused(target, tmp_path):
    folder = tmp_path / "sharded"
    _llama(target[1]).save_pretrained(folder, max_shard_size="100KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    (folder / sorted(set(index["weight_map"].values()))[-1]).unlink()
    with pytest.raises(QunlearnError, match=f"{KEY}: .*names shards that are missing"):
        _audit(target[0], str(folder))


def test_a_shape_mismatch_with_the_target_is_refused(target, tmp_path):
    _llama(target[1], intermediate=96).save_pretrained(tmp_path / "wider")
    with pytest.raises(QunlearnError, match=f"{KEY}: model.layers.0.mlp.down_proj.weight has shape \\[64, 96\\], "
                                            "the target's \\[64, 128\\]"):
        _audit(target[0], str(tmp_path / "wider"))


def test_before_an_embedded_target_exists_the_sizes_are_checked_against_the_config(target, tmp_path):
    audit_target, vocab = target
    _llama(vocab, intermediate=96).save_pretrained(tmp_path / "wider")
    architecture = {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}
    embedded = AuditTarget(str(tmp_path / "not-trained-yet"), audit_target.tokenizer, architecture)
    with pytest.raises(QunlearnError, match=f"{KEY}: config.json's intermediate_size is 96, .*model.intermediate 128"):
        _audit(embedded, str(tmp_path / "wider"))
    _llama(vocab).save_pretrained(tmp_path / "same")
    assert _audit(embedded, str(tmp_path / "same")).path == str(tmp_path / "same")


def test_a_tokenizer_with_more_tokens_than_embedding_rows_is_refused(target, tmp_path, toy_tokenizer_dir):
    _llama(target[1] - 10).save_pretrained(tmp_path / "small-vocab")
    entry = {"path": str(tmp_path / "small-vocab"), "tokenizer": str(toy_tokenizer_dir)}
    architecture = {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}
    embedded = AuditTarget(str(tmp_path / "not-trained-yet"), str(toy_tokenizer_dir), architecture)
    with pytest.raises(QunlearnError, match=f"{KEY}: the tokenizer .* has {target[1]} tokens, the model's embedding "
                                            f"{target[1] - 10} rows"):
        _audit(embedded, entry)


def test_a_tokenizer_with_another_vocabulary_than_the_corpus_is_refused(target, tmp_path, corpus_dir):
    from qunlearn.data.muse import load_corpus
    from qunlearn.data.tokenizer import train_tokenizer

    audit_target, vocab = target
    train_tokenizer(load_corpus(corpus_dir).raw["holdout"], vocab, tmp_path / "other-tokenizer")
    _llama(vocab).save_pretrained(tmp_path / "mine")
    with pytest.raises(QunlearnError, match=f"{KEY}: the tokenizer .*other-tokenizer has another vocabulary than the "
                                            "corpus' tokenizer"):
        _audit(audit_target, {"path": str(tmp_path / "mine"), "tokenizer": str(tmp_path / "other-tokenizer")})


@pytest.mark.parametrize("label", ["target", "retrain", "npo_gdr_lr1e-4_bf16_s0", "ga_lr5e-5_fp32_s3"])
def test_a_label_that_collides_with_a_model_the_workflow_makes_is_refused(target, label):
    with pytest.raises(QunlearnError, match=f"corpora.toy.unlearned.{label}: the label .* collides"):
        _audit(target[0], target[0].target, label=label)


def test_the_mechanism_job_refuses_different_shapes():
    name = "model.layers.0.mlp.down_proj.weight"
    with pytest.raises(QunlearnError, match=f"{name}: the target's shape is \\[4, 8\\], the unlearned model's \\[4, 6\\]"):
        check_same_shapes({name: torch.zeros(4, 8)}, {name: torch.zeros(4, 6)})


def test_without_an_lr_the_update_is_located_without_cap_bins():
    name = "model.layers.0.mlp.down_proj.weight"
    target = {name: torch.tensor([[0.1, 0.2, 0.3, 1.0]])}
    unlearned = {name: torch.tensor([[0.1 + 3e-3, 0.2 - 4e-3, 0.3, 1.0]])}
    quantized = {name: torch.tensor([[0.0, 0.5, 0.5, 1.0]])}
    without = update_location(target, unlearned, quantized, lr=None)["all"]
    assert without == {"cap_bins": None, "moved_near_zero_code": 0.5}
    assert update_location(target, unlearned, quantized, lr=1e-3)["all"]["moved_near_zero_code"] == 0.5


@pytest.mark.parametrize("folder,fix", [("mine", "copy the checkpoint folder again from where it came from"),
                                        ("results/unlearned/toy/ga_lr1e-4_bf16_s0", "re-run: Snakemake rebuilds it")])
def test_a_truncated_checkpoint_gets_the_fix_for_whose_it_is(target, tmp_path, monkeypatch, folder, fix):
    """A user's own folder comes again from its source; only the workflow's own outputs are rebuilt by re-running."""
    monkeypatch.chdir(tmp_path)  # the workflow's working directory, where results/ is
    _llama(target[1]).save_pretrained(folder)
    shard = Path(folder) / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:1000])  # a copy that stopped part-way
    with pytest.raises(QunlearnError, match=f"{KEY}: corrupt or truncated checkpoint file .*model.safetensors") as error:
        _audit(target[0], folder)
    assert fix in error.value.fix and (folder.startswith("results/") or "re-run" not in error.value.fix)


def test_the_pickle_fix_does_not_name_an_argument_transformers_5_dropped(target, tmp_path):
    folder = tmp_path / "pickled"
    _llama(target[1]).save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not read")  # never opened: its name is enough
    with pytest.raises(QunlearnError) as error:
        _audit(target[0], str(folder))
    assert "safe_serialization" not in error.value.fix and "save_pretrained" in error.value.fix


def test_an_embedding_padded_past_the_tokenizer_is_named_as_such(target, tmp_path, toy_tokenizer_dir):
    audit_target, vocab = target
    model = _llama(vocab)
    model.resize_token_embeddings(vocab, pad_to_multiple_of=64)  # rows for tokens that no tokenizer has
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows > vocab and model.lm_head.weight.shape[0] == rows and model.config.vocab_size == rows
    model.save_pretrained(tmp_path / "padded")
    with pytest.raises(QunlearnError, match=f"{KEY}: the embedding has {rows} rows .*the target's {vocab}.*"
                                            f"tokenizer .* has {vocab} tokens") as error:
        _audit(audit_target, str(tmp_path / "padded"))
    assert "lm_head" not in error.value.problem and "`tokenizer:`" in error.value.fix
    assert f"resize_token_embeddings({vocab})" in error.value.fix


def test_the_same_folder_under_two_labels_is_refused_naming_both(target, tmp_path):
    audit_target, vocab = target
    _llama(vocab).save_pretrained(tmp_path / "mine")
    entries = {"first": str(tmp_path / "mine"), "second": {"path": str(tmp_path / "mine" / ".." / "mine")}}
    with pytest.raises(QunlearnError, match="corpora.toy.unlearned.second: the folder .* is also audited as 'first'") \
            as error:
        audited_models({"toy": {"unlearned": entries}}, {("toy", 0): audit_target}, {"toy": [0]}, GRID)
    assert "'first'" in error.value.fix and "'second'" in error.value.fix
