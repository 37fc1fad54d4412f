"""Real MUSE as people download it, through the workflow: a hub snapshot plans and computes what JSON files do."""

import json
import re
import subprocess

import pytest
import yaml
from conftest import REPO, snakemake_with
from muse_snapshots import write_hub_parquet

from qunlearn.data.muse import load_corpus
from qunlearn.workflow import job_counts


def ci_models(workdir):
    """The ci run's target, retrain and tokenizer folders (one place to change when the models' layout does)."""
    results = workdir / "results"
    return {"target": results / "models/toy-news/t0/target", "retrain": results / "models/toy-news/t0/retrain",
            "tokenizer": results / "tokenizer"}


def _config(tmp_path, preset: dict, name: str) -> list[str]:
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(preset))
    return snakemake_with(config)


@pytest.fixture
def tiny_models(tmp_path, tiny_llama, toy_tokenizer_dir):
    """A target (also the retrain model) and a tokenizer that exist: all a dry run checks of them."""
    tiny_llama.save_pretrained(tmp_path / "model", safe_serialization=True)
    return {"target": tmp_path / "model", "retrain": tmp_path / "model", "tokenizer": toy_tokenizer_dir}


def test_muse_news_preset_plans_the_same_jobs_on_a_hub_snapshot(corpus_dir, tiny_models, tmp_path):
    preset = yaml.safe_load((REPO / "presets/muse-news.yaml").read_text())
    snapshot = write_hub_parquet(load_corpus(corpus_dir), tmp_path / "MUSE-News")
    counts = {}
    for name, path in {"json": corpus_dir, "hub": snapshot}.items():
        preset["corpora"]["muse-news"].update(path=str(path), **{k: str(v) for k, v in tiny_models.items()})
        command = [*_config(tmp_path, preset, name), "-n", "--cores", "1", "--directory", str(tmp_path / name)]
        dry = subprocess.run(command, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr[-3000:]
        counts[name] = job_counts(dry.stdout)
    assert counts["hub"] == counts["json"]
    assert counts["json"]["unlearn"] == 20 and counts["json"]["evaluate"] > 20  # 10 methods × 2 precisions, each evaluated


def _without_layout(metrics_file) -> str:
    """The file's text without its corpus_layout entry (write_json: one key a line block, sorted keys)."""
    return re.sub(r'^ "corpus_layout": \{\n(  .*\n)*? \},\n', "", metrics_file.read_text(), flags=re.M)


@pytest.mark.e2e
def test_a_hub_snapshot_gives_byte_identical_metrics(ci_run, tmp_path):
    """The ci run's corpus as MUSE's JSON files and as a hub snapshot, the same models: every metrics file agrees
    byte for byte but for the recorded layout."""
    workdir, _ = ci_run
    json_corpus = workdir / "results/corpora/toy-news"
    snapshot = write_hub_parquet(load_corpus(json_corpus), tmp_path / "MUSE-News")
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    models = {key: str(path) for key, path in ci_models(workdir).items()}
    preset["corpora"] = {"json": {"path": str(json_corpus), **models, "auc_retrain": 0.5},
                         "hub": {"path": str(snapshot), **models, "auc_retrain": 0.5}}
    preset["unlearning"]["methods"] = []
    preset["quantization"]["formats"] = [{"quantizer": "rtn", "bits": 4}]
    command = [*_config(tmp_path, preset, "two-layouts"), "--cores", "2", "--directory", str(tmp_path / "run"),
               "--until", "evaluate"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-5000:]
    metrics = tmp_path / "run/results/metrics"
    files = sorted(path.relative_to(metrics / "json") for path in (metrics / "json").rglob("*.json"))
    assert len(files) == 4  # the target and the retrain model at full precision and RTN-4
    for relative in files:
        json_file, hub_file = metrics / "json" / relative, metrics / "hub" / relative
        assert json.loads(json_file.read_text())["corpus_layout"]["layout"] == "muse-json"
        assert json.loads(hub_file.read_text())["corpus_layout"] == {
            "layout": "hub-parquet", "utility_split": "retain_qa", "privleak_retain": "retain"}
        assert _without_layout(hub_file) == _without_layout(json_file)
        assert "corpus_layout" not in _without_layout(hub_file)
