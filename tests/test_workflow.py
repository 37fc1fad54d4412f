"""End to end: the workflow on the smallest preset, in a temporary folder, as a user would run it."""

import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake_with

from qunlearn.workflow import job_counts

SNAKEMAKE = snakemake_with(REPO / "presets/ci.yaml")
COLUMNS = ["corpus", "model", "method", "lr", "stack", "seed", "quantizer", "bits", "verbmem_f", "knowmem_f",
           "knowmem_r", "privleak"]
UNLEARNED = {f"{method}_lr1e-4_{precision}_s0" for method in ("ga_klr", "npo_gdr_sure") for precision in ("bf16", "mixed")}


@pytest.mark.e2e
def test_summary_has_a_row_per_model_and_precision(ci_run):
    workdir, stdout = ci_run
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert set(COLUMNS) <= set(summary.columns)
    models = {"target", "retrain", *UNLEARNED}
    assert set(summary["model"]) == models and (summary["target_seed"] == 0).all()
    precisions = {("none", 32), ("rtn", 4), ("rtn", 8), ("gptq", 4), ("awq", 4), ("bnb-fp4", 4), ("bnb-int8", 8)}
    assert set(zip(summary["quantizer"], summary["bits"])) == precisions
    assert len(summary) == len(models) * len(precisions)  # the retrain model at every precision too
    for metric in ("verbmem_f", "knowmem_f", "knowmem_r"):
        assert summary[metric].between(0, 100).all()
    retrain_fp = summary[(summary["model"] == "retrain") & (summary["quantizer"] == "none")]
    assert retrain_fp["privleak"].iloc[0] == 0.0  # PrivLeak's reference is this very model
    for metric in ("verbmem_f", "knowmem_f"):  # the excess view's anchors where defined (the ci models' tiny
        for role, anchor in (("target", 1), ("retrain", 0)):  # target may score what its retrain model does: 0/0)
            values = summary.loc[summary["model"] == role, f"{metric}_excess"].dropna()
            assert (values == anchor).all(), (role, metric)
    unlearned = summary[summary["method"].notna()]
    assert set(unlearned["method"]) == {"ga_klr", "npo_gdr_sure"} and (unlearned["lr"] == 1e-4).all()
    assert set(unlearned["stack"]) == {"bf16", "mixed"} and (unlearned["seed"] == 0).all()
    recovery = pd.read_csv(workdir / "results/recovery.csv")
    assert set(recovery["corpus"]) == {"toy-news", "all"}
    assert len(recovery) == 2 * 2 * 2 * len(precisions)  # corpus (and all) × stack × SURE × format
    quantized = recovery[recovery["quantizer"] != "none"]
    assert (quantized["targets"] == 1).all() and quantized["targets_agree"].isin([0, 1]).all()
    verdicts = ["kept", "recovered", "unclear", "undefined"]  # undefined: the ci target's tiny model scores 0
    assert quantized["verdict"].isin(verdicts).all() and quantized["excess_verdict"].isin(verdicts).all()
    by_target = pd.read_csv(workdir / "results/recovery_by_target.csv")
    assert len(by_target) == 2 * 2 * len(precisions) and (by_target["target_seed"] == 0).all()  # news only
    by_method = pd.read_csv(workdir / "results/recovery_by_method.csv")  # method × corpus (and all) × stack × format
    assert len(by_method) == 2 * 2 * 2 * len(precisions) and set(by_method["method"]) == {"ga_klr", "npo_gdr_sure"}
    contrast = pd.read_csv(workdir / "results/contrast.csv")  # bf16 against mixed, per corpus (and all), SURE, format
    assert len(contrast) == 2 * 2 * (len(precisions) - 1) and set(contrast["baseline"]) == {"mixed"}
    assert contrast["verdict"].isin(["higher", "lower", "same", "unclear", "undefined"]).all()
    claims = pd.read_csv(workdir / "results/claims.csv")  # the claims the ci grid can test: GA_KLR and its SURE
    assert claims.groupby("claim").size().to_dict() == {"constrained_recover_4bit": 2 * 4, "eight_bit_like_full": 2 * 2,
                                                        "sure_keeps_4bit": 2 * 4}
    assert claims["verdict"].isin(["reproduced", "not reproduced", "unclear"]).all()
    assert len(pd.read_csv(workdir / "results/tension.csv")) == 2 * 2 * 4  # stack × method × 4-bit format
    mink = pd.read_csv(workdir / "results/mink_scores.csv")
    assert set(mink["split"]) == {"forget", "holdout"} and mink.groupby(["model", "format"]).ngroups == len(summary)
    saved = unlearned[unlearned["quantizer"].isin(["rtn", "gptq", "awq"])]
    assert saved["same_code"].between(0, 1).all() and saved["moved"].between(0, 1).all()
    steps = saved[saved["quantizer"] != "awq"]["below_1_steps"]
    assert steps.between(0, 1).all() and saved[saved["quantizer"] == "awq"]["below_1_steps"].isna().all()
    assert "verbmem_f" in stdout  # the readable table printed at the end of the run


@pytest.mark.e2e
def test_rerun_has_nothing_to_do(ci_run):
    workdir, _ = ci_run
    dry = subprocess.run([*SNAKEMAKE, "--cores", "1", "--directory", str(workdir), "-n"], capture_output=True, text=True)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.e2e
def test_real_corpus_paths_skip_the_training_rules(ci_run, tmp_path):
    """A corpus given by local paths (as real MUSE is) runs unlearning onwards, never the embedded rules; an audited
    model given by path joins it."""
    workdir, _ = ci_run
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    results = workdir / "results"
    preset["corpora"] = {
        "local-muse": {
            "path": str(results / "corpora/toy-news"),
            "target": str(results / "models/toy-news/t0/target"),
            "retrain": str(results / "models/toy-news/t0/retrain"),
            "tokenizer": str(results / "tokenizer"),
            "auc_retrain": 0.5,
            # audit mode on a real corpus: a model unlearned elsewhere, by path
            "unlearned": {"mine": str(results / "unlearned/toy-news/t0/ga_klr_lr1e-4_bf16_s0")},
        }
    }
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(preset))
    command = snakemake_with(config)
    dry = subprocess.run([*command, "-n", "--cores", "1", "--directory", str(tmp_path)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert set(counts) == {"unlearn", "quantize", "evaluate", "mechanism", "summarize", "tables", "plots", "all"}
    models = 2 + len(UNLEARNED) + 1  # target, retrain, the grid's and the audited model, at every precision
    assert counts["evaluate"] == models * ALL_PRECISIONS and counts["mechanism"] == len(UNLEARNED) + 1
    assert counts["unlearn"] == len(UNLEARNED)  # nothing unlearns the audited model


def _dry_run_after(ci_run, tmp_path, change) -> dict[str, int]:
    """Jobs that a changed ci preset schedules in the finished ci run's folder (its keys written in another
    order: reordering alone re-runs nothing)."""
    workdir, _ = ci_run
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    change(preset)
    config = tmp_path / "changed.yaml"
    config.write_text(yaml.safe_dump(preset, sort_keys=True))
    command = snakemake_with(config)
    dry = subprocess.run([*command, "-n", "--cores", "1", "--directory", str(workdir)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    return job_counts(dry.stdout)


AGGREGATE = {"summarize": 1, "tables": 1, "plots": 1, "all": 1}
SAVED_FORMATS, ALL_PRECISIONS = 4, 7  # the ci preset: rtn 4/8, gptq 4, awq 4; with full and bnb fp4/int8
UNLEARN_PRECISIONS = 2  # bf16, mixed
# One unlearning job: its model quantized, measured and evaluated at every precision.
ONE_UNLEARNED = {"unlearn": 1, "quantize": SAVED_FORMATS, "mechanism": 1, "evaluate": ALL_PRECISIONS}


def _times(counts: dict[str, int], n: int) -> dict[str, int]:
    return {rule: n * count for rule, count in counts.items()}


@pytest.mark.e2e
def test_a_changed_evaluation_value_reruns_evaluation_only(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["evaluation"].update(batch_size=8))
    assert counts == {"evaluate": (2 + len(UNLEARNED)) * ALL_PRECISIONS, **AGGREGATE}


@pytest.mark.e2e
def test_a_changed_learning_rate_reruns_that_learning_rate_only(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["unlearning"].update(lrs=[0.0002]))  # not the SURE lrs
    assert counts == {**_times(ONE_UNLEARNED, UNLEARN_PRECISIONS), **AGGREGATE}


@pytest.mark.e2e
def test_an_added_method_adds_only_its_jobs(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["unlearning"]["methods"].append("ga_gdr"))
    assert counts == {**_times(ONE_UNLEARNED, UNLEARN_PRECISIONS), **AGGREGATE}


@pytest.mark.e2e
def test_an_added_seed_or_precision_adds_only_its_jobs(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["unlearning"].update(seeds=[0, 1]))
    assert counts == {**_times(ONE_UNLEARNED, 2 * UNLEARN_PRECISIONS), **AGGREGATE}  # two methods × two precisions
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["unlearning"]["precisions"].append("fp32"))
    assert counts == {**_times(ONE_UNLEARNED, 2), **AGGREGATE}


@pytest.mark.e2e
def test_an_added_target_seed_adds_only_its_pairs_jobs(ci_run, tmp_path):
    """A second target seed: its target and retrain pair fine-tuned from the same base, every grid model unlearned
    from it, and all of them quantized, measured and evaluated; nothing of the first target's runs again."""
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["model"].update(seeds=[0, 1]))
    models = 2 + len(UNLEARNED)
    assert counts == {"finetune": 2, "unlearn": len(UNLEARNED), "quantize": models * SAVED_FORMATS,
                      "mechanism": len(UNLEARNED), "evaluate": models * ALL_PRECISIONS, **AGGREGATE}


@pytest.mark.e2e
def test_changed_fine_tuning_reruns_no_pretraining(ci_run, tmp_path):
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["model"]["finetune"].update(epochs=4))
    assert "pretrain" not in counts and "train_tokenizer" not in counts
    assert counts["finetune"] == 2 and counts["unlearn"] == len(UNLEARNED)
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["model"]["pretrain"].update(epochs=3))
    assert counts["pretrain"] == 1 and counts["finetune"] == 2


@pytest.mark.e2e
def test_an_added_width_plans_only_its_own_jobs(ci_run, tmp_path):
    """A width rung (model.widths): its own base, target and retrain pair and every grid model of it, quantized,
    measured and evaluated, and the ladder's answer; nothing of the run's own width runs again."""
    counts = _dry_run_after(ci_run, tmp_path, lambda c: c["model"].update(widths=[{"hidden": 128}]))
    models = 2 + len(UNLEARNED)
    assert counts == {"pretrain": 1, "finetune": 2, "unlearn": len(UNLEARNED), "quantize": models * SAVED_FORMATS,
                      "mechanism": len(UNLEARNED), "evaluate": models * ALL_PRECISIONS, "widths": 1, **AGGREGATE}


def test_one_base_model_serves_every_embedded_corpus(tmp_path):
    """The both-corpora preset: one pretraining corpus, tokenizer and base; a target and a retrain model
    fine-tuned per corpus and target seed (three)."""
    dry = subprocess.run([*snakemake_with(REPO / "presets/both-corpora.yaml"), "-n", "--cores", "1", "--directory",
                          str(tmp_path)],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert {rule: counts[rule] for rule in ("generate_pretraining_corpus", "train_tokenizer", "pretrain", "finetune",
                                            "generate_corpus")} == {"generate_pretraining_corpus": 1,
                                                                    "train_tokenizer": 1, "pretrain": 1,
                                                                    "finetune": 2 * 2 * 3, "generate_corpus": 2}


def _metric_files(workdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted((workdir / "results/metrics").rglob("*.json"))}


@pytest.mark.e2e
def test_killed_run_resumes_and_a_second_run_gives_identical_metrics(ci_run, tmp_path):
    """A smaller grid with two targets, from scratch, killed (SIGKILL) in the middle of its first unlearning job,
    then resumed. Finished jobs are not redone, the killed job's output never appears half-written, and every
    metrics file it shares with the ci run (target seed 0's target, retrain and GA_KLR bf16 at full precision,
    RTN-4 and FP4) is byte-identical to the ci run's: the same models from a second run, with a second target
    beside them. Its summary pools the two targets. This run also marks quantized checkpoints temporary."""
    first, _ = ci_run
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["model"]["seeds"] = [0, 1]
    preset["unlearning"].update(methods=["ga_klr"], precisions=["bf16"])
    preset["quantization"].update(keep_checkpoints=False, formats=[{"quantizer": "rtn", "bits": 4},
                                                                   {"quantizer": "bnb-fp4", "bits": 4}])
    config = tmp_path / "two-targets.yaml"
    config.write_text(yaml.safe_dump(preset))
    workdir = tmp_path / "run"
    command = [*snakemake_with(config), "--cores", "2", "--directory", str(workdir)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while not list((workdir / "results/logs/unlearn").rglob("*.log")) and run.poll() is None:
        time.sleep(0.01)
    # The job has started (its script opened its log) and is loading the models. A crash: Snakemake and its
    # running job die at once (jobs run in their own process groups).
    subprocess.run(["pkill", "-KILL", "-f", str(workdir)], check=True)
    run.wait()
    killed = next((workdir / "results/logs/unlearn").rglob("*.log")).relative_to(workdir / "results/logs/unlearn")
    assert not (workdir / "results/unlearned" / killed.with_suffix("")).exists()  # nothing half-written in place
    finished = {p: p.stat().st_mtime_ns for p in (workdir / "results/models").rglob("*.safetensors")}
    assert len(finished) >= 3  # base and the killed job's target and retrain, at least

    unlock = subprocess.run([*command, "--unlock"], capture_output=True, text=True)  # a crash leaves the lock
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished models were not trained again
    metrics = _metric_files(workdir)
    assert len(metrics) == 2 * 3 * 3  # two targets × (target, retrain, GA_KLR) × (full, RTN-4, FP4)
    shared = {path: content for path, content in metrics.items() if "/t0/" in path}
    assert len(shared) == 9 and {path: _metric_files(first)[path] for path in shared} == shared
    assert not list((workdir / "results/quantized").rglob("*.safetensors"))  # temporary, deleted once used
    recovery = pd.read_csv(workdir / "results/recovery.csv")
    assert (recovery["targets"] == 2).all()
    assert set(pd.read_csv(workdir / "results/recovery_by_target.csv")["target_seed"]) == {0, 1}


def test_an_audited_label_that_collides_with_a_grid_model_fails_before_any_job(tmp_path):
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["corpora"]["toy-news"]["unlearned"] = {"ga_klr_lr1e-4_bf16_s0": str(tmp_path)}
    config = tmp_path / "collide.yaml"
    config.write_text(yaml.safe_dump(preset))
    dry = subprocess.run([*snakemake_with(config), "-n", "--cores", "1", "--directory", str(tmp_path)],
                         capture_output=True, text=True)
    output = dry.stdout + dry.stderr
    assert dry.returncode != 0
    assert "corpora.toy-news.unlearned.ga_klr_lr1e-4_bf16_s0: the label 'ga_klr_lr1e-4_bf16_s0' collides" in output
    assert "fix: rename the label" in output


@pytest.mark.e2e
def test_an_exported_model_audited_by_path_gets_the_grids_numbers(ci_run, tmp_path):
    """Audit mode as a user runs it: one of the run's unlearned models (bf16), exported to another folder re-sharded
    in fp32 with its tokenizer beside it, audited by path in a copy of the run's folder with no grid unlearning.
    Every metric and mechanism value equals the grid's own evaluation of the same weights, and nothing upstream of
    the target runs again."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qunlearn.io import read_json

    workdir = tmp_path / "run"
    shutil.copytree(ci_run[0], workdir)
    grid_model, exported = "npo_gdr_sure_lr1e-4_bf16_s0", tmp_path / "exported"
    model = AutoModelForCausalLM.from_pretrained(workdir / "results/unlearned/toy-news/t0" / grid_model,
                                                 dtype=torch.float32)
    model.save_pretrained(exported, max_shard_size="100KB")
    AutoTokenizer.from_pretrained(workdir / "results/tokenizer").save_pretrained(exported)
    assert len(list(exported.glob("*.safetensors"))) > 1
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["unlearning"]["methods"] = []
    preset["corpora"]["toy-news"]["unlearned"] = {
        "exported": {"path": str(exported), "method": "npo_gdr_sure", "lr": 1e-4, "stack": "bf16"}}
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(preset))
    command = [*snakemake_with(config), "--cores", "2", "--directory", str(workdir)]
    dry = subprocess.run([*command, "-n"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert job_counts(dry.stdout) == {"quantize": SAVED_FORMATS, "evaluate": ALL_PRECISIONS, "mechanism": 1, **AGGREGATE}
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]

    results = workdir / "results"
    for kind, keys in (("metrics", ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_auc", "items")), ("mechanism", None)):
        grid_files = sorted((results / kind / "toy-news/t0" / grid_model).glob("*.json"))
        assert len(grid_files) == (ALL_PRECISIONS if kind == "metrics" else ALL_PRECISIONS - 1)
        for grid_file in grid_files:
            grid, audited = read_json(grid_file), read_json(results / kind / "toy-news/t0/exported" / grid_file.name)
            assert {k: grid[k] for k in keys or grid} == {k: audited[k] for k in keys or grid}, grid_file.name
    verdicts = pd.read_csv(results / "verdicts.csv")
    assert set(verdicts["model"]) == {"exported"} and verdicts["audited"].all() and len(verdicts) == ALL_PRECISIONS - 1
    assert verdicts["verdict"].isin(["kept", "recovered", "unclear", "undefined"]).all()
    assert (verdicts["method"] == "npo_gdr_sure").all() and verdicts["surviving_update"].notna().all()
    assert pd.read_csv(results / "recovery.csv").empty  # the headline is the grid's, and there is no grid
    assert "Audited models" in done.stdout


@pytest.mark.e2e
def test_the_served_formats_run_through_the_workflow(ci_run, tmp_path, llama_cpp):
    """NVFP4, MXFP4 and GGUF (Q8_0, Q4_0; the ci model is too narrow for k-quants' rows of 256) added to the ci
    preset, in a copy of its run's folder: only their jobs run, and every model gets their metrics and every
    unlearned model their mechanism rows. The grid keeps one unlearned model (SURE in bf16) beside the target and
    the retrain: each role through each served format, at half the jobs."""
    import shutil

    from qunlearn.io import read_json

    workdir = tmp_path / "run"
    shutil.copytree(ci_run[0], workdir)
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    served = [{"quantizer": "nvfp4", "bits": 4}, {"quantizer": "mxfp4", "bits": 4}, {"quantizer": "gguf-q8_0", "bits": 8},
              {"quantizer": "gguf-q4_0", "bits": 4}]
    preset["quantization"]["formats"] += served
    grid_model = "npo_gdr_sure_lr1e-4_bf16_s0"
    preset["unlearning"].update(methods=["npo_gdr_sure"], precisions=["bf16"])
    config = tmp_path / "served.yaml"
    config.write_text(yaml.safe_dump(preset))
    command = [*snakemake_with(config), "--cores", "2", "--directory", str(workdir)]
    dry = subprocess.run([*command, "-n"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    models = 3  # the target, the retrain and the unlearned model
    assert job_counts(dry.stdout) == {"quantize": 2 * models, "quantize_gguf": 2 * models, "evaluate": 4 * models,
                                      "mechanism": 1, **AGGREGATE}
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]
    summary = pd.read_csv(workdir / "results/summary.csv")
    for fmt in served:
        rows = summary[(summary["quantizer"] == fmt["quantizer"]) & (summary["bits"] == fmt["bits"])]
        assert len(rows) == models and rows["verbmem_f"].between(0, 100).all(), fmt
        unlearned = rows[~rows["model"].isin(["target", "retrain"])]
        assert unlearned["surviving_update"].notna().all() and unlearned["verdict"].notna().all(), fmt
    assert set(summary["model"]) == {"target", "retrain", grid_model}
    measured = read_json(workdir / "results/mechanism/toy-news/t0" / grid_model / "gguf-q4_0-w4g32.json")
    assert measured["step_units"] is False and measured["bf16_threshold_lr"] is None


@pytest.mark.e2e
def test_the_report_opens_on_the_answer(ci_run, tmp_path):
    """`snakemake --report` on the finished ci run: one self-contained file whose first category is the headline
    (the recovery figure and table), linked from the workflow description it opens on."""
    workdir, _ = ci_run
    report = tmp_path / "report.html"
    done = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--nolock", "--report", str(report)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    assert "recovery_verdicts.png" in text and "Answer" in text and "showResultInfo" in text


def _planned_outputs(config: Path, workdir: Path) -> dict[str, set[str]]:
    """rule -> the outputs of its jobs in a dry run of the config in an empty folder."""
    dry = subprocess.run([*snakemake_with(config), "-n", "--cores", "1", "--directory", str(workdir)],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = {}
    for rule, output in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    output: (.*)$", dry.stdout, re.MULTILINE):
        planned.setdefault(rule, set()).add(output)
    return planned


def test_the_paper_claims_preset_shares_the_default_runs_base_targets_and_models(tmp_path):
    """In a default run's folder the preset trains nothing again: the same corpus, tokenizer, base and targets
    (the same paths, from the same config keys), and the default's NPO_GDR models under bf16 and fp32 (the same
    unlearning settings); and it plans its grid: 12 models under bf16 and 6 under fp32 per target."""
    default, preset = (yaml.safe_load((REPO / name).read_text()) for name in ("config.yaml", "presets/paper-claims.yaml"))
    for key in ("seed", "threads", "corpora", "tokenizer", "model"):
        assert preset[key] == default[key], key
    grid_keys = {"methods", "lrs", "method_lrs", "precisions", "method_precisions"}
    assert {k: v for k, v in preset["unlearning"].items() if k not in grid_keys} == {
        k: v for k, v in default["unlearning"].items() if k not in grid_keys}
    ours, theirs = _planned_outputs(REPO / "presets/paper-claims.yaml", tmp_path / "claims"), _planned_outputs(
        REPO / "config.yaml", tmp_path / "default")
    for rule in ("generate_pretraining_corpus", "generate_corpus", "train_tokenizer", "pretrain", "finetune"):
        assert ours[rule] == theirs[rule], rule
    shared = {o for o in theirs["unlearn"] if "npo_gdr_lr3e-5_bf16_" in o or "npo_gdr_lr3e-5_fp32_" in o}
    assert len(shared) == 2 * 3 and shared <= ours["unlearn"]
    assert len(ours["unlearn"]) == (12 + 6) * 3 and len(ours["finetune"]) == 2 * 3
    assert sum("_fp32_" in o for o in ours["unlearn"]) == 6 * 3
