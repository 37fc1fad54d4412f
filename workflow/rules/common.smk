# Helpers that turn the validated config into the grid: corpora × models × precisions.
import json
import os
import re
import sys

# The library, importable here and in every job (conda envs included) without `pip install -e .`.
SRC = str(Path(workflow.basedir, "src"))
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.getenv("PYTHONPATH")]))
)

from qunlearn.audit import Reference, audited_models
from qunlearn.errors import stop_on_error
from qunlearn.config import (
    check_config,
    group_size,
    method_lrs,
    precision_id,
    settings_hash,
    split_unlearned_name,
    unlearned_name,
)
from qunlearn.grid import CALIBRATED, FIGURES, QUANTIZERS, parse_method

with stop_on_error():
    check_config(config)

CORPORA = list(config["corpora"])  # in the config's order, which the tables keep
# Snakemake compares params as strings: with every mapping's keys sorted, reordering a config file (or a
# default the schema filled in) re-runs nothing.
config.update(json.loads(json.dumps(config, sort_keys=True)))
UNLEARNED = [  # the grid's
    unlearned_name(method, lr, precision, seed)
    for method in config["unlearning"]["methods"]
    for lr in method_lrs(config, method)
    for precision in config["unlearning"]["precisions"]
    for seed in config["unlearning"]["seeds"]
]


def base_model_dir(corpus, role):
    """The target or retrain model: trained in the DAG for embedded corpora, a local path otherwise."""
    return config["corpora"][corpus].get(role, f"results/models/{corpus}/{role}")


def corpus_tokenizer(corpus):
    """Real corpora name their tokenizer; the embedded ones share the base model's."""
    return config["corpora"][corpus].get("tokenizer", "results/tokenizer")


# Audit mode: per corpus, unlearned models given by path, checked now (before any job runs) against the target.
with stop_on_error():
    AUDITED = audited_models(
        config["corpora"],
        {
            corpus: Reference(
                base_model_dir(corpus, "target"),
                corpus_tokenizer(corpus),
                config["model"] if "embedded" in config["corpora"][corpus] else None,
            )
            for corpus in CORPORA
        },
        UNLEARNED,
    )


def unlearned_models(corpus):
    """The grid's unlearned models, then the corpus' audited ones."""
    return UNLEARNED + list(AUDITED[corpus])


ALL_UNLEARNED = UNLEARNED + sorted(
    {label for models in AUDITED.values() for label in models}
)
MODELS = ["target", "retrain"] + ALL_UNLEARNED
FORMATS = {
    precision_id(f, config["quantization"]): f
    for f in config["quantization"]["formats"]
}
QUANTIZED_PRECISIONS = list(FORMATS)
PRECISIONS = ["full"] + QUANTIZED_PRECISIONS
SAVED_PRECISIONS = [p for p, f in FORMATS.items() if QUANTIZERS[f["quantizer"]].saved]
GGUF_PRECISIONS = [
    p for p in SAVED_PRECISIONS if QUANTIZERS[FORMATS[p]["quantizer"]].gguf
]
COMPRESSED_PRECISIONS = [p for p in SAVED_PRECISIONS if p not in GGUF_PRECISIONS]
# The retrain model is the reference at full precision (PrivLeak, the floor); the others at every precision.
EVALUATIONS = [
    (corpus, model, precision)
    for corpus in CORPORA
    for model in ["target", "retrain", *unlearned_models(corpus)]
    for precision in (["full"] if model == "retrain" else PRECISIONS)
]
# The mechanism: every unlearned model under every format.
MEASUREMENTS = [
    (corpus, model, precision)
    for corpus in CORPORA
    for model in unlearned_models(corpus)
    for precision in QUANTIZED_PRECISIONS
]


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) if names else "^$"


wildcard_constraints:
    corpus=one_of(CORPORA),
    role="target|retrain",
    unlearned=one_of(ALL_UNLEARNED),
    model=one_of(MODELS),
    precision=one_of(PRECISIONS),


def corpus_dir(wildcards):
    spec = config["corpora"][wildcards.corpus]
    return spec["path"] if "path" in spec else f"results/corpora/{wildcards.corpus}"


def tokenizer_dir(wildcards):
    return corpus_tokenizer(wildcards.corpus)


def model_tokenizer_dir(wildcards):
    """An audited model's own tokenizer (its entry's, or its folder's), else the corpus'."""
    audited = AUDITED[wildcards.corpus].get(wildcards.model)
    return audited.tokenizer if audited else tokenizer_dir(wildcards)


def target_dir(wildcards):
    return base_model_dir(wildcards.corpus, "target")


def model_path(corpus, model):
    if model in ("target", "retrain"):
        return base_model_dir(corpus, model)
    if model in AUDITED[corpus]:
        return AUDITED[corpus][model].path
    return f"results/unlearned/{corpus}/{model}"


def model_dir(wildcards):
    return model_path(wildcards.corpus, wildcards.model)


def unlearned_dir(wildcards):
    return model_path(wildcards.corpus, wildcards.unlearned)


def unlearning_lr(corpus, unlearned):
    """The lr a model was unlearned at: the grid's from its name, an audited model's if its entry says it."""
    audited = AUDITED[corpus].get(unlearned)
    return audited.lr if audited else float(split_unlearned_name(unlearned).lr)


def quantized_dir(wildcards):
    return (
        f"results/quantized/{wildcards.corpus}/{wildcards.model}/{wildcards.precision}"
    )


def unlearn_settings(unlearned):
    name = split_unlearned_name(unlearned)
    keys = ("epochs", "batch_size", "max_len", "alpha", "beta", "loss_variant")
    return {
        "method": name.method,
        "lr": float(name.lr),
        "precision": name.precision,
        "seed": name.seed,
        **{k: config["unlearning"][k] for k in keys},
    }


def sure_settings(unlearned):
    """SURE's gamma and mask for a _sure method, None otherwise."""
    sure = config["unlearning"]["sure"]
    return (
        {"gamma": sure["gamma"], "mask": sure["mask"]}
        if parse_method(split_unlearned_name(unlearned).method)[1]
        else None
    )


def checkpoint_rule_input(wildcards):
    """MUSE's checkpoint rule compares with the retrain model's KnowMem-forget, which the unlearning job
    measures itself (so evaluation settings do not reach unlearning)."""
    if config["unlearning"]["checkpoint"] == "muse":
        return {"retrain": base_model_dir(wildcards.corpus, "retrain")}
    return {}


def loader_of(precision):
    """How evaluation loads the model: as saved, dequantized from a compressed-tensors checkpoint or a GGUF file,
    or quantized on load."""
    if precision == "full":
        return "full"
    quantizer = QUANTIZERS[FORMATS[precision]["quantizer"]]
    if not quantizer.saved:
        return quantizer.name
    return "gguf" if quantizer.gguf else "dequantize"


def evaluation_checkpoint(wildcards):
    return (
        quantized_dir(wildcards)
        if wildcards.precision in SAVED_PRECISIONS
        else model_dir(wildcards)
    )


def quantize_settings(precision):
    fmt = FORMATS[precision]
    quantizer = fmt["quantizer"]
    if not QUANTIZERS[quantizer].saved:
        return {"quantizer": quantizer, "bits": fmt["bits"]}
    calibrated = quantizer in CALIBRATED
    return {
        "quantizer": quantizer,
        "bits": fmt["bits"],
        "group_size": group_size(fmt, config["quantization"]),
        "symmetric": config["quantization"]["symmetric"].get(quantizer),  # none for FP4
        "calibration": config["quantization"]["calibration"] if calibrated else None,
    }


def summary_row(corpus, model, precision):
    """The summary's key columns for one metrics file."""
    name = split_unlearned_name(model) if model in UNLEARNED else None
    audited = AUDITED[corpus].get(model)
    fmt = FORMATS.get(precision, {"quantizer": "none", "bits": 32})
    saved = fmt["quantizer"] != "none" and QUANTIZERS[fmt["quantizer"]].saved
    group = group_size(fmt, config["quantization"]) if saved else ""
    return dict(
        corpus=corpus,
        model=model,
        audited=audited is not None,
        method=name.method if name else audited.method if audited else "",
        lr=name.lr if name else (audited.lr or "") if audited else "",
        unlearn_precision=(
            name.precision if name else audited.unlearn_precision if audited else ""
        ),
        seed=name.seed if name else "",
        quantizer=fmt["quantizer"],
        bits=fmt["bits"],
        group_size=group,
        config_hash=settings_hash(result_settings(corpus, model, precision)),
    )


def result_settings(corpus, model, precision):
    """Every config value one metrics file depends on, from the corpus to the evaluation."""
    unlearned = model in UNLEARNED
    audited = AUDITED[corpus].get(model)
    return {
        "seed": config["seed"],
        "corpus": config["corpora"][corpus],
        "tokenizer": config["tokenizer"],
        "model": config["model"],  # pretraining and fine-tuning
        "unlearning": (
            unlearn_settings(model)
            if unlearned
            else {"audited": vars(audited)} if audited else None
        ),
        "sure": sure_settings(model) if unlearned else None,
        "checkpoint": config["unlearning"]["checkpoint"] if unlearned else None,
        "quantization": quantize_settings(precision) if precision in FORMATS else None,
        "evaluation": config["evaluation"],
    }


ARCHITECTURE = {
    k: config["model"][k]
    for k in ("hidden", "layers", "heads", "intermediate", "max_position")
}


def training_settings(stage):
    """One stage of the embedded models' training (pretrain or finetune): its loop's settings."""
    keys = ("epochs", "batch_size", "lr", "warmup_steps")
    return {
        **{k: config["model"][stage][k] for k in keys},
        "train_len": config["model"]["train_len"],
    }


def job_resources(rule):
    """The config's resources for a rule: its own entry over `default`."""
    spec = config["resources"]
    return {**spec["default"], **spec.get(rule, {})}


def quantized_output(path):
    """Quantized checkpoints are temporary when the config says not to keep them."""
    folder = directory(path)
    return folder if config["quantization"]["keep_checkpoints"] else temp(folder)
