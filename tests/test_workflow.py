"""End to end: the workflow on the smallest preset, in a temporary folder, as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "presets/ci.yaml")]
COLUMNS = ["corpus", "model", "method", "lr", "quantizer", "bits", "verbmem_f", "knowmem_f", "knowmem_r", "privleak"]


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ci-run")
    done = subprocess.run([*SNAKEMAKE, "--cores", "2", "--directory", str(workdir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir, done


@pytest.mark.e2e
def test_summary_has_a_row_per_model_and_precision(ci_run):
    workdir, done = ci_run
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert set(COLUMNS) <= set(summary.columns)
    models = {"target", "retrain", "ga_klr_lr1e-4", "npo_gdr_sure_lr1e-4"}
    assert set(summary["model"]) == models
    precisions = {("none", 32), ("rtn", 4), ("rtn", 8), ("gptq", 4), ("awq", 4), ("bnb-fp4", 4), ("bnb-int8", 8)}
    assert set(zip(summary["quantizer"], summary["bits"])) == precisions
    assert len(summary) == (len(models) - 1) * len(precisions) + 1  # the retrain model at full precision only
    for metric in ("verbmem_f", "knowmem_f", "knowmem_r"):
        assert summary[metric].between(0, 100).all()
    retrain_fp = summary[(summary["model"] == "retrain") & (summary["quantizer"] == "none")]
    assert retrain_fp["privleak"].iloc[0] == 0.0  # PrivLeak's reference is this very model
    unlearned = summary[summary["method"].notna()]
    assert set(unlearned["method"]) == {"ga_klr", "npo_gdr_sure"} and (unlearned["lr"] == 1e-4).all()
    saved = unlearned[unlearned["quantizer"].isin(["rtn", "gptq", "awq"])]
    assert saved["same_code"].between(0, 1).all() and saved["moved"].between(0, 1).all()
    steps = saved[saved["quantizer"] != "awq"]["below_1_steps"]
    assert steps.between(0, 1).all() and saved[saved["quantizer"] == "awq"]["below_1_steps"].isna().all()
    assert "verbmem_f" in done.stdout  # the readable table printed at the end of the run


@pytest.mark.e2e
def test_rerun_has_nothing_to_do(ci_run):
    workdir, _ = ci_run
    dry = subprocess.run([*SNAKEMAKE, "--cores", "1", "--directory", str(workdir), "-n"], capture_output=True, text=True)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.e2e
def test_real_corpus_paths_skip_the_training_rules(ci_run, tmp_path):
    """A corpus given by local paths (as real MUSE is) runs unlearning onwards, never the embedded rules."""
    workdir, _ = ci_run
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    results = workdir / "results"
    preset["corpora"] = {
        "local-muse": {
            "path": str(results / "corpora/toy-news"),
            "target": str(results / "models/toy-news/target"),
            "retrain": str(results / "models/toy-news/retrain"),
            "tokenizer": str(results / "tokenizers/toy-news"),
            "auc_retrain": 0.5,
        }
    }
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(preset))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(config)]
    dry = subprocess.run([*command, "-n", "--cores", "1", "--directory", str(tmp_path)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert set(job_counts(dry.stdout)) == {"unlearn", "quantize", "evaluate", "mechanism", "summarize", "all"}


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split() for line in table) if rule != "total"}
