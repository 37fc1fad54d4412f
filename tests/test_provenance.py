"""What each job and result depends on (provenance.py): the settings passed as params, the summary's key columns,
and a provenance hash that moves with exactly the settings a result depends on."""

import copy
from pathlib import Path

import yaml
from snakemake.utils import validate

from qunlearn.config.checks import attack_specs, format_id_of
from qunlearn.config.naming import ModelId
from qunlearn.config.provenance import Provenance
from qunlearn.config.schema import load_schema, validated

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
CI = yaml.safe_load((ROOT / "presets/ci.yaml").read_text())
TARGET = ModelId("toy-news", 0, "target")
RETRAIN = ModelId("toy-news", 0, "retrain")
UNLEARNED = ModelId("toy-news", 0, "npo_gdr_sure_lr1e-4_bf16_s0")


def _provenance(change=lambda config: None) -> Provenance:
    config = copy.deepcopy(CI)
    config["attacks"] = [{"kind": "prune"}]
    change(config)
    config = validated(config, load_schema(SCHEMA))
    validate(config, SCHEMA, set_default=True)
    formats = {format_id_of(f, config["quantization"]): f for f in config["quantization"]["formats"]}
    return Provenance(config, formats, attack_specs(config), {"toy-news": {}})


def _hash(provenance: Provenance, model: ModelId, format_id: str = "full") -> str:
    return provenance.summary_row(model, format_id)["config_hash"]


def test_summary_rows_name_the_model_its_format_and_its_attack():
    provenance = _provenance()
    row = provenance.summary_row(UNLEARNED, "rtn-w4g32")
    assert {k: row[k] for k in ("model", "method", "lr", "stack", "seed", "quantizer", "bits",
                                "group_size", "attack")} == {
        "model": UNLEARNED.name, "method": "npo_gdr_sure", "lr": "1e-4", "stack": "bf16", "seed": 0,
        "quantizer": "rtn", "bits": 4, "group_size": 32, "attack": ""}
    on_load = provenance.summary_row(TARGET, "bnb-fp4-w4")
    assert (on_load["method"], on_load["group_size"], on_load["quantizer"]) == ("", "", "bnb-fp4")
    attacked = provenance.summary_row(TARGET, "prune-wanda-50")
    assert (attacked["attack"], attacked["quantizer"], attacked["bits"]) == ("prune-wanda-50", "none", 32)


def test_quantize_settings_take_each_format_s_own_defaults():
    provenance = _provenance()
    assert provenance.quantize_settings("rtn-w4g32") == {"quantizer": "rtn", "bits": 4, "group_size": 32,
                                                         "symmetric": False, "calibration": None}
    gptq = provenance.quantize_settings("gptq-w4g32")
    assert gptq["symmetric"] is True and gptq["calibration"]["samples"] == 4
    assert provenance.quantize_settings("bnb-fp4-w4") == {"quantizer": "bnb-fp4", "bits": 4}
    symmetric = _provenance(lambda c: c["quantization"].update(symmetric={"rtn": True}))
    assert symmetric.quantize_settings("rtn-w4g32")["symmetric"] is True


def test_the_hash_moves_with_exactly_what_a_result_depends_on():
    base = _provenance()
    alpha = _provenance(lambda c: c["unlearning"].update(alpha=0.5))
    assert _hash(alpha, UNLEARNED) != _hash(base, UNLEARNED)  # unlearning settings: the unlearned models only
    assert _hash(alpha, TARGET) == _hash(base, TARGET) and _hash(alpha, RETRAIN) == _hash(base, RETRAIN)
    batch = _provenance(lambda c: c["evaluation"].update(batch_size=8))
    assert _hash(batch, TARGET) != _hash(base, TARGET)  # evaluation settings: every result
    seeds = _provenance(lambda c: c["model"].update(seeds=[0, 1]))
    assert _hash(seeds, TARGET) == _hash(base, TARGET)  # another target seed changes no existing result
    calibration = _provenance(lambda c: c["quantization"]["calibration"].update(samples=8))
    assert _hash(calibration, TARGET, "gptq-w4g32") != _hash(base, TARGET, "gptq-w4g32")
    assert _hash(calibration, TARGET, "rtn-w4g32") == _hash(base, TARGET, "rtn-w4g32")  # RTN reads no text
    assert _hash(calibration, TARGET, "prune-wanda-50") != _hash(base, TARGET, "prune-wanda-50")  # Wanda does
    no_attacks = _provenance(lambda c: c.update(attacks=[]))
    assert _hash(no_attacks, TARGET, "rtn-w4g32") == _hash(base, TARGET, "rtn-w4g32")


def test_sure_and_training_settings():
    provenance = _provenance()
    assert provenance.sure_settings(UNLEARNED.name) == {"gamma": 90, "mask": "per_step"}
    assert provenance.sure_settings("ga_klr_lr1e-4_bf16_s0") is None
    unlearn = provenance.unlearn_settings("ga_klr_lr1e-4_mixed_s2")
    assert (unlearn["method"], unlearn["lr"], unlearn["precision"], unlearn["seed"]) == ("ga_klr", 1e-4, "mixed", 2)
    assert provenance.training_settings("finetune") == {"epochs": 3, "batch_size": 4, "lr": 0.003, "warmup_steps": 2,
                                                         "train_len": 384}
    assert provenance.architecture() == {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128,
                                       "max_position": 512}


ADAPTER = {"rank": 4, "alpha": 8, "lrs": [1e-3]}


def test_adapters_change_no_full_weight_job_or_result():
    plain, with_adapter = _provenance(), _provenance(lambda c: (c.update(attacks=[]),
                                                                c["unlearning"].update(adapters=[ADAPTER])))
    without_attacks = _provenance(lambda c: c.update(attacks=[]))
    assert with_adapter.unlearn_settings(UNLEARNED.name) == plain.unlearn_settings(UNLEARNED.name)
    for model in (TARGET, UNLEARNED):
        assert _hash(with_adapter, model, "rtn-w4g32") == _hash(without_attacks, model, "rtn-w4g32")


def test_an_adapter_is_unlearned_in_fp32_on_a_bf16_target_and_each_serving_has_its_settings():
    provenance = _provenance(lambda c: (c.update(attacks=[]), c["unlearning"].update(adapters=[ADAPTER])))
    adapter = provenance.unlearn_settings("npo_gdr_sure_lr1e-3_lora-r4a8_s0")
    assert adapter["precision"] == "fp32" and adapter["lr"] == 1e-3
    assert adapter["adapter"] == {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                           "gate_proj", "up_proj", "down_proj"],
                                  "base_dtype": "bf16"}
    servings = {s: f"npo_gdr_sure_lr1e-3_lora-r4a8+{s}_s0" for s in ("merged-bf16", "merged-fp32", "served", "served-q4")}
    assert all(provenance.unlearn_settings(name) == adapter for name in servings.values())  # one job serves all
    assert provenance.serving_settings(servings["merged-fp32"]) == {"serving": "merged-fp32", "dtype": "fp32"}
    assert provenance.serving_settings(servings["served"]) == {"serving": "served", "adapter_quantization": None}
    assert provenance.serving_settings(servings["served-q4"])["adapter_quantization"] == {
        "bits": 4, "group_size": 32, "symmetric": False}
    assert provenance.serving_settings(UNLEARNED.name) is None
    hashes = {_hash(provenance, ModelId("toy-news", 0, name), "rtn-w4g32") for name in servings.values()}
    assert len(hashes) == 4
    row = provenance.summary_row(ModelId("toy-news", 0, servings["served-q4"]), "bnb-fp4-w4")
    assert (row["method"], row["lr"], row["stack"]) == ("npo_gdr_sure", "1e-3", "lora-r4a8+served-q4")


def test_a_width_rung_is_its_own_model_and_changes_no_other_width_s_hash():
    def ladder(config):
        config["model"]["widths"] = [{"hidden": 128, "finetune": {"epochs": 5, "lr": 1e-3}}]

    plain, with_rung = _provenance(), _provenance(ladder)
    for model in (TARGET, RETRAIN, UNLEARNED):
        assert _hash(with_rung, model, "rtn-w4g32") == _hash(plain, model, "rtn-w4g32")
        assert with_rung.summary_row(model, "full")["width"] == 64
    rung = ModelId("toy-news", 0, UNLEARNED.name, width=128)
    assert rung.folder == "toy-news/t0-w128/npo_gdr_sure_lr1e-4_bf16_s0"
    assert with_rung.summary_row(rung, "full")["width"] == 128
    assert _hash(with_rung, rung) != _hash(with_rung, UNLEARNED)
    # heads and intermediate scale with hidden (head size 32, intermediate twice hidden); the recipe is the rung's
    assert with_rung.architecture(128) == {"hidden": 128, "layers": 2, "heads": 4, "intermediate": 256,
                                           "max_position": 512}
    assert with_rung.training_settings("finetune", 128) == {"epochs": 5, "batch_size": 4, "lr": 1e-3,
                                                            "warmup_steps": 2, "train_len": 384}
    assert with_rung.training_settings("pretrain", 128) == with_rung.training_settings("pretrain")
    retuned = _provenance(lambda c: (ladder(c), c["model"]["widths"][0]["finetune"].update(lr=5e-4)))
    assert _hash(retuned, rung) != _hash(with_rung, rung) and _hash(retuned, TARGET) == _hash(plain, TARGET)
