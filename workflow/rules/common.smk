# Helpers that turn the validated config into the grid: corpora × targets × models × precisions.
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
    attack_specs,
    check_config,
    group_size,
    method_lrs,
    precision_id,
    settings_hash,
)
from qunlearn.grid import CALIBRATED, FIGURES, QUANTIZERS, parse_method
from qunlearn.launch import check_shards
from qunlearn.identity import (
    BASE_ROLES,
    GRID_NAME_PATTERN,
    ModelId,
    UnlearnedName,
    parse_target_folder,
    target_folder,
    unlearned_name,
)

with stop_on_error():
    check_config(config)
    check_shards(config)

# The paper's published table, shipped with the workflow (resources/), read wherever the run's folder is.
PAPER_TABLE = str(Path(workflow.basedir, "resources/paper_muse_news.csv"))
CORPORA = list(config["corpora"])  # in the config's order, which the tables keep
# Snakemake compares params as strings: with every mapping's keys sorted, reordering a config file (or a
# default the schema filled in) re-runs nothing.
config.update(json.loads(json.dumps(config, sort_keys=True)))
UNLEARNED = [  # the grid's, unlearned from every target
    unlearned_name(method, lr, precision, seed)
    for method in config["unlearning"]["methods"]
    for lr in method_lrs(config, method)
    for precision in config["unlearning"]["precisions"]
    for seed in config["unlearning"]["seeds"]
]


def target_seeds(corpus):
    """An embedded corpus fine-tunes a target and retrain pair per seed of model.seeds; a real one has its one pair."""
    return config["model"]["seeds"] if "embedded" in config["corpora"][corpus] else [0]


def base_model_dir(corpus, target_seed, role):
    """The target or retrain model: trained in the DAG for embedded corpora, a local path otherwise."""
    return config["corpora"][corpus].get(
        role, f"results/models/{corpus}/{target_folder(target_seed)}/{role}"
    )


def corpus_tokenizer(corpus):
    """Real corpora name their tokenizer; the embedded ones share the base model's."""
    return config["corpora"][corpus].get("tokenizer", "results/tokenizer")


# Audit mode: per corpus, unlearned models given by path, checked now (before any job runs) against their target.
with stop_on_error():
    AUDITED = audited_models(
        config["corpora"],
        {
            (corpus, seed): Reference(
                base_model_dir(corpus, seed, "target"),
                corpus_tokenizer(corpus),
                config["model"] if "embedded" in config["corpora"][corpus] else None,
            )
            for corpus in CORPORA
            for seed in target_seeds(corpus)
        },
        {corpus: target_seeds(corpus) for corpus in CORPORA},
        UNLEARNED,
    )


def models_of(corpus, seed):
    """A target's models: itself, its retrain model, the grid's unlearned from it, and the audited ones."""
    audited = [a.label for a in AUDITED[corpus].values() if a.target_seed == seed]
    return [ModelId(corpus, seed, name) for name in [*BASE_ROLES, *UNLEARNED, *audited]]


MODELS = [
    m
    for corpus in CORPORA
    for seed in target_seeds(corpus)
    for m in models_of(corpus, seed)
]
UNLEARNED_MODELS = [m for m in MODELS if m.role in ("unlearned", "audited")]
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
# Attacks other than quantization (attack.smk), by id: each evaluated at full precision from its own checkpoint.
ATTACK_SPECS = attack_specs(config)
# Every model at every precision (the retrain model too, the floor of the excess view), and under every attack.
EVALUATIONS = [(model, precision) for model in MODELS for precision in PRECISIONS]
EVALUATIONS += [(model, attack) for model in MODELS for attack in ATTACK_SPECS]
# The mechanism: every unlearned model under every format.
MEASUREMENTS = [
    (model, precision)
    for model in UNLEARNED_MODELS
    for precision in QUANTIZED_PRECISIONS
]


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) if names else "^$"


# Names by their shape, not by listing them: a constraint that alternates every model name makes the DAG slow.
LABEL = "[A-Za-z0-9][A-Za-z0-9_.+-]*"  # target, retrain, grid names and audit labels (the schema's pattern)


wildcard_constraints:
    corpus=one_of(CORPORA),
    pair="t[0-9]+",
    role="target|retrain",
    model=LABEL,
    unlearned=LABEL,
    precision=one_of([*PRECISIONS, *ATTACK_SPECS]),


def model_of(wildcards, name_key="model"):
    return ModelId.from_wildcards(wildcards, name_key)


def corpus_dir(wildcards):
    spec = config["corpora"][wildcards.corpus]
    return spec["path"] if "path" in spec else f"results/corpora/{wildcards.corpus}"


def tokenizer_dir(wildcards):
    return corpus_tokenizer(wildcards.corpus)


def audited_of(model):
    return AUDITED[model.corpus].get(model.name) if model.role == "audited" else None


def model_tokenizer_dir(wildcards):
    """An audited model's own tokenizer (its entry's, or its folder's), else the corpus'."""
    audited = audited_of(model_of(wildcards))
    return audited.tokenizer if audited else tokenizer_dir(wildcards)


def target_dir(wildcards):
    return base_model_dir(
        wildcards.corpus, parse_target_folder(wildcards.pair), "target"
    )


def model_path(model):
    if model.role in BASE_ROLES:
        return base_model_dir(model.corpus, model.target_seed, model.name)
    if model.role == "audited":
        return audited_of(model).path
    return f"results/unlearned/{model.folder}"


def model_dir(wildcards):
    return model_path(model_of(wildcards))


def unlearned_dir(wildcards):
    return model_path(model_of(wildcards, "unlearned"))


def unlearning_lr(model):
    """The lr a model was unlearned at: the grid's from its name, an audited model's if its entry says it."""
    audited = audited_of(model)
    return audited.lr if audited else float(model.unlearned.lr)


def quantized_dir(wildcards):
    return f"results/quantized/{model_of(wildcards).folder}/{wildcards.precision}"


def unlearn_settings(unlearned):
    name = UnlearnedName.parse(unlearned)
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
        if parse_method(UnlearnedName.parse(unlearned).method)[1]
        else None
    )


def checkpoint_rule_input(wildcards):
    """MUSE's checkpoint rule compares with the retrain model's KnowMem-forget, which the unlearning job
    measures itself (so evaluation settings do not reach unlearning)."""
    if config["unlearning"]["checkpoint"] == "muse":
        seed = parse_target_folder(wildcards.pair)
        return {"retrain": base_model_dir(wildcards.corpus, seed, "retrain")}
    return {}


def loader_of(precision):
    """How evaluation loads the model: as saved, dequantized from a compressed-tensors checkpoint or a GGUF file,
    or quantized on load."""
    if precision == "full" or precision in ATTACK_SPECS:
        return "full"
    quantizer = QUANTIZERS[FORMATS[precision]["quantizer"]]
    if not quantizer.saved:
        return quantizer.name
    return "gguf" if quantizer.gguf else "dequantize"


def attacked_dir(wildcards):
    return f"results/attacked/{model_of(wildcards).folder}/{wildcards.precision}"


def evaluation_checkpoint(wildcards):
    if wildcards.precision in ATTACK_SPECS:
        return attacked_dir(wildcards)
    return (
        quantized_dir(wildcards)
        if wildcards.precision in SAVED_PRECISIONS
        else model_dir(wildcards)
    )


# One input function each for evaluate and quantize, which have the most jobs. Snakemake inspects every input
# function's signature for every job, a large share of a big grid's dry-run time.
def evaluate_input(wildcards):
    return {
        "corpus": corpus_dir(wildcards),
        "tokenizer": model_tokenizer_dir(wildcards),
        "model": evaluation_checkpoint(wildcards),
    }


def quantize_input(wildcards):
    return {
        "model": model_dir(wildcards),
        "tokenizer": model_tokenizer_dir(wildcards),
        "corpus": corpus_dir(wildcards),
    }


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


def summary_row(model, precision):
    """The summary's key columns for one metrics file."""
    name, audited = model.unlearned, audited_of(model)
    fmt = FORMATS.get(precision, {"quantizer": "none", "bits": 32})
    saved = fmt["quantizer"] != "none" and QUANTIZERS[fmt["quantizer"]].saved
    return dict(
        corpus=model.corpus,
        target_seed=model.target_seed,
        model=model.name,
        audited=audited is not None,
        method=name.method if name else audited.method if audited else "",
        lr=name.lr if name else (audited.lr or "") if audited else "",
        unlearn_precision=(
            name.precision if name else audited.unlearn_precision if audited else ""
        ),
        seed=name.seed if name else "",
        format=precision,
        quantizer=fmt["quantizer"],
        bits=fmt["bits"],
        group_size=group_size(fmt, config["quantization"]) if saved else "",
        attack=precision if precision in ATTACK_SPECS else "",
        config_hash=settings_hash(result_settings(model, precision)),
    )


def result_settings(model, precision):
    """Every config value one metrics file depends on, from the corpus to the evaluation."""
    audited, grid = audited_of(model), model.role == "unlearned"
    return {
        "seed": config["seed"],
        "corpus": config["corpora"][model.corpus],
        "tokenizer": config["tokenizer"],
        # pretraining and fine-tuning; a target's own seed is target_seed (adding a seed changes no other result)
        "model": {k: v for k, v in config["model"].items() if k != "seeds"},
        "target_seed": model.target_seed,
        "unlearning": (
            unlearn_settings(model.name)
            if grid
            else {"audited": vars(audited)} if audited else None
        ),
        "sure": sure_settings(model.name) if grid else None,
        "checkpoint": config["unlearning"]["checkpoint"] if grid else None,
        "shards": config["unlearning"]["shards"] if grid else None,
        "quantization": quantize_settings(precision) if precision in FORMATS else None,
        "evaluation": config["evaluation"],
        # only attacked rows: the other rows' hashes stay as they were before attacks existed
        **({"attack": attack_settings(precision)} if precision in ATTACK_SPECS else {}),
    }


def attack_settings(attack):
    """An attack's knobs, with the config values its job also depends on: the training attacks' chunk length
    (unlearning's), the calibrated pruning methods' calibration (GPTQ's)."""
    spec = ATTACK_SPECS[attack]
    if spec["kind"] != "prune":
        return {**spec, "max_len": config["unlearning"]["max_len"]}
    if spec["method"] != "magnitude":
        return {**spec, "calibration": config["quantization"]["calibration"]}
    return spec


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
