"""Attacks in the workflow: added to the finished ci run, they run only their own jobs and the aggregation."""

import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake_with
from test_workflow import AGGREGATE, UNLEARNED, _dry_run_after

from qunlearn.io import read_json
from qunlearn.workflow import job_counts

MODELS = 2 + len(UNLEARNED)  # the ci run's target, retrain and unlearned models (one target seed)
RELEARN = {"kind": "relearn", "steps": 3}
PRUNE = {"kind": "prune", "method": "wanda", "sparsity": 0.5}


@pytest.mark.e2e
def test_added_attacks_run_only_their_jobs_and_the_aggregation(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c.update(attacks=[RELEARN, PRUNE]))
    assert counts == {"split_forget": 1, "attack": 2 * MODELS, "evaluate": 2 * MODELS, **AGGREGATE}


def _metrics_times(workdir) -> dict:
    return {path: path.stat().st_mtime_ns for path in (workdir / "results/metrics").rglob("*.json")}


@pytest.mark.e2e
def test_attacks_on_the_ci_run_give_a_verdict_per_stack_and_attack_with_the_retrain_control(ci_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(ci_run[0], workdir)
    before = _metrics_times(workdir)
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["attacks"] = [RELEARN, PRUNE]
    config = tmp_path / "attacks.yaml"
    config.write_text(yaml.safe_dump(preset))
    command = [*snakemake_with(config), "--cores", "2", "--directory", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]
    assert {path: _metrics_times(workdir)[path] for path in before} == before  # nothing evaluated again

    attacks = pd.read_csv(workdir / "results/attacks.csv")
    ids = ["relearn-s3-lr3e-5-b4-bf16", "prune-wanda-50"]
    assert len(attacks) == 2 * 2 * 2 * len(ids)  # corpus (and all) × stack (bf16, mixed) × SURE × attack
    assert set(attacks["attack"]) == set(ids) and set(attacks["stack"]) == {"bf16", "mixed"}
    # Where the target answers none of half B's items (the ci target, a tiny model fine-tuned for 3 epochs, answers
    # none) there is nothing to recover: the change, its retrain control and the verdict are undefined together.
    # The verdict itself is tested on hand-made metrics (test_attack_report.py).
    defined = attacks["change"].notna()
    assert (attacks["retrain_change"].notna() == defined).all() and ((attacks["verdict"] == "undefined") == ~defined).all()
    assert attacks["verdict"].isin(["kept", "recovered", "unclear", "undefined"]).all()
    assert attacks[["unlearned_utility_change", "retrain_utility_change"]].notna().all().all()
    assert (attacks["b_verbmem_items"] > 0).all() and (attacks["b_knowmem_items"] > 0).all()
    summary = pd.read_csv(workdir / "results/summary.csv", keep_default_na=False)
    assert (summary["attack"] != "").sum() == len(ids) * MODELS
    assert len(pd.read_csv(workdir / "results/verdicts.csv")) == len(UNLEARNED) * 6  # quantized rows only, as before
    split = read_json(workdir / "results/splits/toy-news.json")
    for model in ("target", *UNLEARNED):
        folder = workdir / "results/attacked/toy-news/t0" / model
        assert read_json(folder / ids[0] / "attack.json")["documents"] == len(split["documents"]["a"])
        assert min(read_json(folder / ids[1] / "attack.json")["zeros"].values()) >= 0.5
    assert (workdir / "results/plots/attack_recovery.png").stat().st_size > 0

    preset["attacks"].append({"kind": "prune", "method": "magnitude", "structure": "2:4"})
    config.write_text(yaml.safe_dump(preset))
    dry = subprocess.run([*command, "-n"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert job_counts(dry.stdout) == {"attack": MODELS, "evaluate": MODELS, **AGGREGATE}  # the split is kept
