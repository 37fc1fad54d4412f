"""Adapters in the workflow: added to the finished ci run, they plan only their own jobs; one adapter unlearned and
served each way, merged and unmerged, from a copy of that run."""

import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, snakemake_with
from test_workflow import AGGREGATE, ALL_PRECISIONS, SAVED_FORMATS, _dry_run_after

from qunlearn.io import read_json
from qunlearn.models.checkpoints import load_state

ADAPTER = {"rank": 4, "alpha": 8, "lrs": [1e-3]}
METHODS = 2  # the ci preset's ga_klr and npo_gdr_sure
MERGED, SERVED = 2, 2  # merged-bf16 and merged-fp32; served and served-q4


def _with_adapter(config: dict) -> None:
    config["unlearning"]["adapters"] = [ADAPTER]


@pytest.mark.e2e
def test_an_added_adapter_plans_only_its_own_jobs(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, _with_adapter)
    merged_models = METHODS * MERGED
    assert counts == {"unlearn": METHODS, "merge_adapter": merged_models,
                      # merged models are quantized, measured and evaluated like any; served ones have no checkpoint
                      "quantize": merged_models * SAVED_FORMATS, "mechanism": merged_models,
                      "evaluate": merged_models * ALL_PRECISIONS, "evaluate_served": METHODS * SERVED * ALL_PRECISIONS,
                      **AGGREGATE}


@pytest.mark.e2e
def test_an_adapter_is_unlearned_once_and_served_four_ways(ci_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(ci_run[0], workdir)
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    _with_adapter(preset)
    config = tmp_path / "adapters.yaml"
    config.write_text(yaml.safe_dump(preset))
    name = "ga_klr_lr1e-3_lora-r4a8"
    metrics, unlearned = "results/metrics/toy-news/t0", workdir / "results/unlearned/toy-news/t0"
    targets = [f"{metrics}/{name}+served_s0/full.json", f"{metrics}/{name}+served_s0/bnb-fp4-w4.json",
               f"{metrics}/{name}+served-q4_s0/rtn-w4g32.json", f"{metrics}/{name}+merged-bf16_s0/rtn-w4g32.json",
               f"results/unlearned/toy-news/t0/{name}+merged-fp32_s0.json"]
    done = subprocess.run([*snakemake_with(config), "--cores", "2", "--directory", str(workdir), *targets],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]
    assert done.stderr.count("rule unlearn:") == 1  # one job serves every way

    adapter = unlearned / f"{name}_s0"
    assert {p.name for p in adapter.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json"}
    assert not (adapter / "model.safetensors").exists() and not list(adapter.glob("*.bin"))
    record = read_json(unlearned / f"{name}_s0.json")
    assert record["settings"]["precision"] == "fp32" and record["settings"]["adapter"]["base_dtype"] == "bf16"
    for serving, dtype in (("merged-bf16", "bfloat16"), ("merged-fp32", "float32")):
        state = load_state(unlearned / f"{name}+{serving}_s0")
        assert {str(t.dtype).removeprefix("torch.") for t in state.values()} == {dtype}
    kept = read_json(unlearned / f"{name}+merged-fp32_s0.json")
    assert kept["serving"] == "merged-fp32" and kept["merge"]["surviving_share"] > 0.99
    assert kept["steps"] == record["steps"]  # the adapter's own record, carried over
    assert 0 <= read_json(unlearned / f"{name}+merged-bf16_s0.json")["merge"]["surviving_share"] <= 1.5

    target = read_json(workdir / metrics / "target/full.json")
    served = read_json(workdir / targets[0])
    # the adapter moved: its Min-K% scores are not the target's (the same texts, the same order)
    assert served["mink"]["forget"] != target["mink"]["forget"]
    for target_file in targets[1:4]:
        result = read_json(workdir / target_file)
        assert 0 <= result["knowmem_f"] <= 100 and 0 <= result["privleak_auc"] <= 1
    # served models run on the target's own quantized checkpoint: no quantize job of their own
    assert not (workdir / "results/quantized/toy-news/t0" / f"{name}+served-q4_s0").exists()
