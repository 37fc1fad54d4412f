"""Every config mistake in one line: bad configs run through the real `snakemake` command line stop before any job,
with an `error:` line naming the key and a `fix:` line; numbers written as text are read as the numbers they are."""

import copy
import json
import re
import subprocess

import numpy as np
import pytest
import yaml
from conftest import REPO, snakemake_with
from safetensors.numpy import save_file
from snakemake.cli import parse_config
from snakemake.utils import update_config, validate

from qunlearn.config.checks import settings_hash
from qunlearn.config.schema import coerced, load_schema, validated
from qunlearn.data.synthetic import write_corpus
from qunlearn.errors import QunlearnError
from qunlearn.workflow import job_counts

CI_TEXT = (REPO / "presets/ci.yaml").read_text()
CI = yaml.safe_load(CI_TEXT)
SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
NOWHERE = "/nonexistent/qunlearn"


def _edited(**changes) -> dict:
    """The ci preset with `a.b.c=value` changes (None deletes the key)."""
    config = copy.deepcopy(CI)
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        if value is None:
            del node[key]
        else:
            node[key] = value
    return config


def _yaml_text(old: str, new: str) -> str:
    """The ci preset's text with one line changed, as a user would type it (yaml.safe_dump would quote 3e-5)."""
    assert CI_TEXT.count(old) == 1
    return CI_TEXT.replace(old, new)


def _with_audited(entry: str) -> str:
    """The ci preset's text with one audited model, `LABEL: ENTRY` as a user would type it."""
    line = "    embedded: {genre: news, documents: 10, facts: 3, questions: 2}\n"
    return _yaml_text(line, f"{line}    unlearned:\n      {entry}\n")


def _dry_run(tmp_path, config, *extra: str) -> tuple[subprocess.CompletedProcess, str]:
    """`snakemake --configfile BAD.yaml -n --cores 1 --directory TMP`, from TMP; its terminal output. `config`: a
    dict, a config file's text, or a function that makes the files it needs in TMP and returns one of those."""
    config = config(tmp_path) if callable(config) else config
    path = tmp_path / "config.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "run"
    done = subprocess.run([*snakemake_with(path), "-n", "--cores", "1", "--directory", str(workdir), *extra],
                          capture_output=True, text=True, cwd=tmp_path)
    return done, done.stdout + done.stderr


def _checkpoint(folder, hidden=64, layers=2, heads=2, intermediate=128, vocab_size=600):
    """A checkpoint folder whose config.json has the ci model's sizes and one safetensors shard: enough for the
    start-up checks of an embedded corpus whose target is not trained yet (no weight is read in a dry run)."""
    folder.mkdir(parents=True)
    sizes = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                 intermediate_size=intermediate, vocab_size=vocab_size, model_type="llama")
    (folder / "config.json").write_text(json.dumps(sizes))
    save_file({"model.embed_tokens.weight": np.zeros((vocab_size, hidden), np.float32)}, folder / "model.safetensors")
    return folder


def _one_forget_document(tmp_path) -> dict:
    """A relearn attack on a real-data corpus (by path) whose forget set is a single document, too few to split."""
    folder = tmp_path / "muse"
    write_corpus(folder, "news", seed=0, documents=10, facts=3, questions=2)
    (folder / "raw/forget.json").write_text(json.dumps(json.loads((folder / "raw/forget.json").read_text())[:1]))
    return _edited(attacks=[{"kind": "relearn"}],
                   corpora={"one-doc": {key: str(folder) for key in ("path", "target", "retrain", "tokenizer")}})


# (id, the bad config, extra command-line arguments, the key its error line names, what the error and fix say)
BAD = [
    ("unknown top-level key", _edited(seeds=[0]), (), "top level", "unknown key 'seeds'.*rename 'seeds' to 'seed'"),
    ("unknown nested key", _edited(**{"unlearning.lr": 0.0001}), (), "unlearning", "unknown key 'lr'.*to 'lrs'"),
    ("unknown key in an audited model", _with_audited("my-npo: {path: mine, lrate: 3e-5}"), (),
     "corpora.toy-news.unlearned.my-npo", "unknown key 'lrate'.*rename 'lrate' to 'lr'"),
    ("label with a space", _edited(**{"corpora.toy-news.unlearned": {"my npo": "mine"}}), (),
     "corpora.toy-news.unlearned", "the name 'my npo' is not allowed.*'my-npo'"),
    ("wrong type", _edited(**{"model.hidden": "big"}), (), "model.hidden", r"must be a whole number \(got 'big'\)"),
    ("unknown method", _edited(**{"unlearning.methods": ["ga_klr", "gradient_ascent"]}), (), "unlearning.methods[1]",
     r"not an allowed value \(got 'gradient_ascent'\).*write one of ga, ga_gdr"),
    ("negative lr written 1e-5", _yaml_text("  lrs: [0.0001]\n", "  lrs: [-1e-5]\n"), (), "unlearning.lrs[0]",
     r"must be greater than 0 \(got -1e-05\)"),
    ("negative lr written with a dot", _edited(**{"unlearning.lrs": [-1.0e-5]}), (), "unlearning.lrs[0]",
     r"must be greater than 0 \(got -1e-05\)"),
    ("lrs not a list", _edited(**{"unlearning.lrs": 0.0001}), (), "unlearning.lrs", r"must be a list.*lrs: \[0.0001\]"),
    ("a precision twice", _edited(**{"unlearning.precisions": ["bf16", "bf16"]}), (), "unlearning.precisions",
     "lists a value more than once"),
    ("FP4 at 8 bits", _edited(**{"quantization.formats": [{"quantizer": "bnb-fp4", "bits": 8}]}), (),
     "quantization.formats", "quantizer 'bnb-fp4' does not support 8 bits.*use bits in"),
    ("group size not dividing hidden", _edited(**{"quantization.group_size": 48}), (), "quantization.group_size",
     "48 does not divide model.hidden 64.*choose a group size"),
    ("a format's group size not dividing hidden",
     _edited(**{"quantization.formats": [{"quantizer": "rtn", "bits": 4, "group_size": 48}]}), (),
     "quantization.formats[0].group_size", "48 does not divide model.hidden 64"),
    ("too few documents", _edited(**{"corpora.toy-news.embedded.documents": 5}), (),
     "corpora.toy-news.embedded.documents", r"must be at least 10 \(got 5\)"),
    ("misspelt genre", _edited(**{"corpora.toy-news.embedded.genre": "new"}), (), "corpora.toy-news.embedded.genre",
     "did you mean 'news'"),
    ("real corpus without its models", _edited(corpora={"muse-news": {"path": NOWHERE, "target": NOWHERE}}), (),
     "corpora.muse-news", "missing keys 'retrain', 'tokenizer'.*add retrain"),
    ("real corpus path missing", _edited(corpora={"muse-news": {key: f"{NOWHERE}/{key}" for key in
                                                                ("path", "target", "retrain", "tokenizer")}}), (),
     "corpora.muse-news.path", "does not exist.*local copy"),
    ("real-data key next to embedded", _edited(**{"corpora.toy-news.path": NOWHERE}), (), "corpora.toy-news",
     "key 'path' is not allowed together with 'embedded'"),
    ("no corpus", _edited(corpora={}), (), "corpora", "must have at least 1 entry"),
    ("resources typo", _edited(resources={"evaluat": {"mem_mb": 1000}}), (), "resources",
     "unknown key 'evaluat'.*rename 'evaluat' to 'evaluate'"),
    ("not a boolean", _edited(**{"quantization.keep_checkpoints": "maybe"}), (), "quantization.keep_checkpoints",
     "must be true or false"),
    ("muse checkpoint without knowmem_f", _edited(**{"unlearning.epoch_metrics": ["knowmem_r"]}), (),
     "unlearning.checkpoint", "muse needs KnowMem-forget.*add knowmem_f"),
    ("--config: bits not allowed", CI, ("--config", 'quantization={"formats":[{"quantizer":"rtn","bits":3}]}'),
     "quantization.formats[0].bits", r"not an allowed value \(got 3\).*write one of 4, 5, 8"),
    ("--config: a word for a number", CI, ("--config", 'unlearning={"epochs": "ten"}'), "unlearning.epochs",
     r"must be a whole number \(got 'ten'\)"),
    ("audited folder missing", _edited(**{"corpora.toy-news.unlearned": {"mine": f"{NOWHERE}/mine"}}), (),
     "corpora.toy-news.unlearned.mine", "checkpoint folder .* does not exist"),
    ("audited negative lr", _with_audited("mine: {path: mine, lr: -3e-5}"), (),
     "corpora.toy-news.unlearned.mine.lr", r"must be greater than 0 \(got -3e-05\)"),
    ("audited label that is a model's name", _edited(**{"corpora.toy-news.unlearned": {"target": NOWHERE}}), (),
     "corpora.toy-news.unlearned.target", "collides.*rename the label"),
    ("unknown attack kind", _edited(attacks=[{"kind": "relearning"}]), (), "attacks[0].kind",
     "not an allowed value.*did you mean 'relearn'"),
    ("sparsity of 1", _edited(attacks=[{"kind": "prune", "sparsity": 1.0}]), (), "attacks[0].sparsity",
     r"must be less than 1 \(got 1.0\).*below 1"),
    ("zero relearning steps", _edited(attacks=[{"kind": "relearn", "steps": 0}]), (), "attacks[0].steps",
     r"must be at least 1 \(got 0\)"),
    ("unknown precision stack of an attack", _edited(attacks=[{"kind": "relearn", "precision": "bf8"}]), (),
     "attacks[0].precision", "not an allowed value.*write one of bf16"),
    ("unknown fine-tuning data", _edited(attacks=[{"kind": "finetune", "data": "forget"}]), (), "attacks[0].data",
     "not an allowed value.*write one of retain2, holdout"),
    ("a knob of another attack", _edited(attacks=[{"kind": "relearn", "sparsity": 0.5}]), (), "attacks[0].sparsity",
     "relearn has no knob 'sparsity'.*remove it"),
    ("2:4 at another sparsity", _edited(attacks=[{"kind": "prune", "structure": "2:4", "sparsity": 0.7}]), (),
     "attacks[0].sparsity", "2:4 pruning zeroes 2 weights of every 4.*structure: unstructured"),
    ("forget set too small to split", _one_forget_document, (), "corpora.one-doc.path",
     "half B has no document.*more forget documents"),
]


@pytest.mark.parametrize("config,extra,key,says", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_config_stops_before_any_job_with_one_line_naming_its_key(tmp_path, config, extra, key, says):
    done, output = _dry_run(tmp_path, config, *extra)
    assert done.returncode != 0, output[-3000:]
    assert "Job stats" not in output and not (tmp_path / "run/results").exists()  # no job planned, none started
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    fixes = [line for line in output.splitlines() if line.startswith("fix: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: "), output[-3000:]
    assert len(fixes) == 1, output[-3000:]
    assert re.search(says, f"{errors[0]} {fixes[0]}"), f"{errors[0]}\n{fixes[0]}"


def test_with_verbose_the_traceback_is_shown(tmp_path):
    done, output = _dry_run(tmp_path, _edited(**{"unlearning.epoch_metrics": ["knowmem_r"]}), "--verbose")
    assert done.returncode != 0 and "Traceback" in output and "check_config" in output
    assert "error: unlearning.checkpoint: muse needs KnowMem-forget" in output


def test_several_mistakes_are_named_at_once():
    config = _edited(**{"model.hidden": "big", "unlearning.lr": 0.0001})
    with pytest.raises(QunlearnError) as error:
        validated(config, SCHEMA)
    assert [(e.problem.split(":")[0], bool(e.fix)) for e in error.value.errors] == [("model.hidden", True),
                                                                                    ("unlearning", True)]


def test_yaml_reads_3e_5_as_text():
    """The trap this module exists for (docs/paper.md §12): YAML 1.1 floats need a dot."""
    assert yaml.safe_load("lr: 3e-5") == {"lr": "3e-5"} and yaml.safe_load("lr: 3.0e-5") == {"lr": 3e-5}


def test_numbers_become_numbers_only_where_the_schema_asks_for_one():
    config = {
        "seed": 1000.0,  # --config seed=1e3 gives a float; the schema wants an integer
        "corpora": {"toy": {"embedded": {"genre": "news", "documents": "12"},  # under if/then
                            "unlearned": {"a": {"path": "5", "method": "1", "lr": "3e-5"}, "b": "7"}}},  # oneOf
        "unlearning": {"lrs": ["1e-5", "0.00002"], "epochs": "3", "sure": {"gamma": "80"}},
        "quantization": {"keep_checkpoints": "false", "formats": [{"quantizer": "rtn", "bits": "8"}]},  # enum of ints
        "evaluation": {"batch_size": "16", "mink_k": "0.4"},  # [integer, string] with a pattern; an enum of floats
        "resources": {"unlearn": {"mem_mb": "100"}, "default": {"runtime": "fast"}},  # $ref
    }
    assert coerced(config, SCHEMA) == {
        "seed": 1000,
        "corpora": {"toy": {"embedded": {"genre": "news", "documents": 12},
                            "unlearned": {"a": {"path": "5", "method": "1", "lr": 3e-5}, "b": "7"}}},
        "unlearning": {"lrs": [1e-5, 2e-5], "epochs": 3, "sure": {"gamma": 80}},
        "quantization": {"keep_checkpoints": False, "formats": [{"quantizer": "rtn", "bits": 8}]},
        "evaluation": {"batch_size": 16, "mink_k": 0.4},
        "resources": {"unlearn": {"mem_mb": 100}, "default": {"runtime": "fast"}},  # not a number: the schema says so
    }
    assert coerced({"evaluation": {"batch_size": "auto"}}, SCHEMA) == {"evaluation": {"batch_size": "auto"}}
    alpha = validated({**CI, "unlearning": {**CI["unlearning"], "alpha": 1}}, SCHEMA)["unlearning"]["alpha"]
    assert alpha == 1.0 and isinstance(alpha, float)  # alpha: 1 and alpha: 1.0 give the same params and hash
    assert config["unlearning"]["lrs"] == ["1e-5", "0.00002"]  # a copy: the input is left as it was


def _full_config(config: dict) -> dict:
    """What the Snakefile turns a config into: coerced and checked, then Snakemake's defaults filled in."""
    config = validated(config, SCHEMA)
    validate(config, str(SCHEMA_PATH))
    return config


def _same_config_and_hash(*configs: dict) -> bool:
    """config_hash in the summary is settings_hash of values taken from this config: equal configs, equal hashes."""
    full = [_full_config(config) for config in configs]
    return all(c == full[0] for c in full) and len({settings_hash(c) for c in full}) == 1


def test_lrs_written_1e_5_are_accepted_and_hash_as_written_with_a_dot(tmp_path):
    text = _yaml_text("  lrs: [0.0001]\n  sure: {lrs: [0.0001]}\n", "  lrs: [1e-5]\n  sure: {lrs: [2e-4]}\n")
    done, output = _dry_run(tmp_path, text)
    assert done.returncode == 0, output[-3000:]
    assert "ga_klr_lr1e-5_bf16_s0" in output and "npo_gdr_sure_lr2e-4_bf16_s0" in output
    dotted = _edited(**{"unlearning.lrs": [0.00001], "unlearning.sure": {"lrs": [2.0e-4]}})
    assert _same_config_and_hash(yaml.safe_load(text), dotted)


def test_nested_config_values_on_the_command_line_are_accepted_and_merged(tmp_path):
    arguments = ['unlearning={"lrs":[1e-5]}', 'quantization={"formats":[{"quantizer":"rtn","bits":8}]}']
    done, output = _dry_run(tmp_path, CI, "--config", *arguments)
    assert done.returncode == 0, output[-3000:]
    assert "ga_klr_lr1e-5_bf16_s0" in output and "rtn-w8g32" in output and "rtn-w4g32" not in output
    merged = copy.deepcopy(CI)
    update_config(merged, parse_config(arguments))  # as Snakemake merges --config into the config file
    assert merged["unlearning"]["lrs"] == ["1e-5"] and merged["quantization"]["formats"][0]["bits"] == "8"
    assert merged["unlearning"]["methods"] == CI["unlearning"]["methods"]  # mappings merged, lists replaced
    dotted = _edited(**{"unlearning.lrs": [0.00001], "quantization.formats": [{"quantizer": "rtn", "bits": 8}]})
    assert _same_config_and_hash(merged, dotted)


def test_an_audited_models_lr_written_3e_5_is_accepted_and_hashes_as_written_with_a_dot(tmp_path):
    _checkpoint(tmp_path / "run/mine")
    spellings = [_with_audited(f"mine: {{path: mine, method: npo_gdr, lr: {lr}}}")
                 for lr in ("3e-5", "3.0e-5", "0.00003")]
    done, output = _dry_run(tmp_path, spellings[0])
    assert done.returncode == 0, output[-3000:]
    assert "results/metrics/toy-news/t0/mine/full.json" in output  # the audited model is evaluated
    assert job_counts(done.stdout)["unlearn"] == 4  # and not unlearned
    assert _same_config_and_hash(*(yaml.safe_load(text) for text in spellings))


@pytest.mark.e2e
def test_numbers_written_as_text_rerun_nothing_in_a_finished_run(ci_run, tmp_path):
    """The finished ci run (lrs: [0.0001]) with its lrs written 1e-4, in the file and on the command line: Snakemake
    compares every job's params (the summary's config_hash among them) and finds nothing to do."""
    workdir, _ = ci_run
    path = tmp_path / "ci.yaml"
    path.write_text(_yaml_text("  lrs: [0.0001]\n  sure: {lrs: [0.0001]}\n", "  lrs: [1e-4]\n  sure: {lrs: [1e-4]}\n"))
    for extra in ([], ["--config", 'unlearning={"lrs":[1e-4]}']):
        dry = subprocess.run([*snakemake_with(path), "-n", "--cores", "1", "--directory", str(workdir), *extra],
                             capture_output=True, text=True)
        output = dry.stdout + dry.stderr
        assert dry.returncode == 0 and "Nothing to be done" in output, output[-3000:]
