# Helpers that turn the validated config into the grid: corpora × models × precisions.
import os
import sys

# The library, importable here and in every job (conda envs included) without `pip install -e .`.
SRC = str(Path(workflow.basedir, "src"))
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.getenv("PYTHONPATH")]))
)

from qunlearn.config import check_config, format_lr, precision_id
from qunlearn.quantization import QUANTIZERS

check_config(config)

CORPORA = list(config["corpora"])
UNLEARNED = [
    f"{method}_lr{format_lr(lr)}"
    for method in config["unlearning"]["methods"]
    for lr in config["unlearning"]["lrs"]
]
MODELS = ["target", "retrain"] + UNLEARNED
FORMATS = {
    precision_id(f, config["quantization"]): f
    for f in config["quantization"]["formats"]
}
PRECISIONS = ["full"] + list(FORMATS)
RTN_PRECISIONS = [p for p, f in FORMATS.items() if f["quantizer"] == "rtn"]


wildcard_constraints:
    corpus="|".join(CORPORA),
    role="target|retrain",
    unlearned="|".join(UNLEARNED) if UNLEARNED else "^$",
    model="|".join(MODELS),
    precision="|".join(PRECISIONS),


def corpus_dir(wildcards):
    spec = config["corpora"][wildcards.corpus]
    return spec["path"] if "path" in spec else f"results/corpora/{wildcards.corpus}"


def tokenizer_dir(wildcards):
    spec = config["corpora"][wildcards.corpus]
    return (
        spec["tokenizer"]
        if "tokenizer" in spec
        else f"results/tokenizers/{wildcards.corpus}"
    )


def base_model_dir(corpus, role):
    """The target or retrain model: trained in the DAG for embedded corpora, a local path otherwise."""
    return config["corpora"][corpus].get(role, f"results/models/{corpus}/{role}")


def target_dir(wildcards):
    return base_model_dir(wildcards.corpus, "target")


def model_dir(wildcards):
    if wildcards.model in ("target", "retrain"):
        return base_model_dir(wildcards.corpus, wildcards.model)
    return f"results/unlearned/{wildcards.corpus}/{wildcards.model}"


def quantized_dir(wildcards):
    return (
        f"results/quantized/{wildcards.corpus}/{wildcards.model}/{wildcards.precision}"
    )


def unlearn_settings(unlearned):
    method, lr = unlearned.rsplit("_lr", 1)
    keys = ("epochs", "batch_size", "max_len", "alpha", "beta", "dtype")
    return {
        "method": method,
        "lr": float(lr),
        **{k: config["unlearning"][k] for k in keys},
    }


def loader_of(precision):
    """How evaluation loads the model: as saved, dequantized from a checkpoint, or quantized on load."""
    if precision == "full":
        return "full"
    return (
        "dequantize"
        if QUANTIZERS[FORMATS[precision]["quantizer"]].saved
        else FORMATS[precision]["quantizer"]
    )


def evaluation_checkpoint(wildcards):
    return (
        quantized_dir(wildcards)
        if loader_of(wildcards.precision) == "dequantize"
        else model_dir(wildcards)
    )


def summary_row(corpus, model, precision):
    """The summary's key columns for one metrics file."""
    method, lr = model.rsplit("_lr", 1) if model in UNLEARNED else ("", "")
    fmt = FORMATS.get(precision, {"quantizer": "none", "bits": 32})
    saved = fmt["quantizer"] != "none" and QUANTIZERS[fmt["quantizer"]].saved
    group = config["quantization"]["group_size"] if saved else ""
    return dict(
        corpus=corpus,
        model=model,
        method=method,
        lr=lr,
        quantizer=fmt["quantizer"],
        bits=fmt["bits"],
        group_size=group,
    )
