# Helpers that turn the validated config into the grid: corpora × targets × models × formats.
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

from qunlearn.audit import AuditTarget, audited_models
from qunlearn.errors import stop_on_error
from qunlearn.config.checks import (
    attack_specs,
    check_config,
    format_id_of,
    unlearned_names,
)
from qunlearn.config.provenance import Provenance
from qunlearn.registry import FIGURES, backend
from qunlearn.config.naming import (
    BASE_ROLES,
    MERGED_NAME_PATTERN,
    SERVED_NAME_PATTERN,
    TRAINED_NAME_PATTERN,
    ModelId,
    base_folder,
    base_folder_pattern,
    parse_base_folder,
    parse_pair,
    target_folder,
    target_folder_pattern,
)
from qunlearn.config.widths import ladder_parameters, model_at, rungs
from qunlearn.models.files import hidden_size

with stop_on_error():
    check_config(config)

# The paper's published table, shipped with the workflow (resources/), read wherever the run's folder is.
PAPER_TABLE = str(Path(workflow.basedir, "resources/paper_muse_news.csv"))
CORPORA = list(config["corpora"])  # in the config's order, which the tables keep
# Snakemake compares params as strings: with every mapping's keys sorted, reordering a config file (or a
# default the schema filled in) re-runs nothing.
config.update(json.loads(json.dumps(config, sort_keys=True)))
UNLEARNED = unlearned_names(config)  # the grid's, unlearned from every target


def target_seeds(corpus):
    """An embedded corpus fine-tunes a target and retrain pair per seed of model.seeds; a real one has its one pair."""
    return config["model"]["seeds"] if "embedded" in config["corpora"][corpus] else [0]


def pairs(corpus):
    """(target seed, width) of every target and retrain pair: the run's own width's (width None), then each width
    rung's (model.widths) for an embedded corpus."""
    if "embedded" not in config["corpora"][corpus]:
        return [(0, None)]
    return [
        (seed, width)
        for width in [None, *rungs(config["model"])]
        for seed in model_at(config["model"], width)["seeds"]
    ]


def base_model_dir(corpus, target_seed, role, width=None):
    """The target or retrain model: trained in the DAG for embedded corpora, a local path otherwise."""
    return config["corpora"][corpus].get(
        role, f"results/models/{corpus}/{target_folder(target_seed, width)}/{role}"
    )


def corpus_tokenizer(corpus):
    """Real corpora name their tokenizer; the embedded ones share the base model's."""
    return config["corpora"][corpus].get("tokenizer", "results/tokenizer")


# Audit mode: per corpus, unlearned models given by path, checked now (before any job runs) against their target.
with stop_on_error():
    AUDITED = audited_models(
        config["corpora"],
        {
            (corpus, seed): AuditTarget(
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


def models_of(corpus, seed, width):
    """A target's models: itself, its retrain model, the grid's unlearned from it, and the audited ones (which
    are unlearned from a target of the run's own width)."""
    audited = [
        a.label
        for a in AUDITED[corpus].values()
        if a.target_seed == seed and width is None
    ]
    names = [*BASE_ROLES, *UNLEARNED, *audited]
    return [ModelId(corpus, seed, name, width) for name in names]


MODELS = [
    m
    for corpus in CORPORA
    for seed, width in pairs(corpus)
    for m in models_of(corpus, seed, width)
]
UNLEARNED_MODELS = [m for m in MODELS if m.role in ("unlearned", "audited")]
FORMATS = {
    format_id_of(f, config["quantization"]): f
    for f in config["quantization"]["formats"]
}
QUANTIZED_FORMATS = list(FORMATS)
FORMAT_IDS = ["full"] + QUANTIZED_FORMATS
SAVED_FORMATS = [p for p, f in FORMATS.items() if backend(f["quantizer"]).saved]


def formats_written_by(rule):
    """The saved formats whose backend's quantizer runs in `rule` (quantize.smk)."""
    return [p for p, f in FORMATS.items() if backend(f["quantizer"]).rule == rule]


# Attacks other than quantization (attack.smk), by id: each evaluated at full precision from its own checkpoint.
ATTACK_SPECS = attack_specs(config)
# Every model in every format (the retrain model too, the floor of the excess view), and under every attack.
EVALUATIONS = [(model, format_id) for model in MODELS for format_id in FORMAT_IDS]
EVALUATIONS += [(model, attack) for model in MODELS for attack in ATTACK_SPECS]


def served(model):
    """An adapter served unmerged (adapters.smk): evaluated on the target in each format, with no checkpoint."""
    return model.role == "unlearned" and model.unlearned.unmerged


# The mechanism: every unlearned model with weights of its own under every format.
MEASUREMENTS = [
    (model, format_id)
    for model in UNLEARNED_MODELS
    if not served(model)
    for format_id in QUANTIZED_FORMATS
]


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) if names else "^$"


# Names by their shape, not by listing them: a constraint that alternates every model name makes the DAG slow.
LABEL = "[A-Za-z0-9][A-Za-z0-9_.+-]*"  # target, retrain, grid names and audit labels (the schema's pattern)


wildcard_constraints:
    corpus=one_of(CORPORA),
    pair=target_folder_pattern(rungs(config["model"])),
    base=base_folder_pattern(rungs(config["model"])),
    role="target|retrain",
    model=LABEL,
    unlearned=LABEL,
    format=one_of([*FORMAT_IDS, *ATTACK_SPECS]),


def model_of(wildcards, name_key="model"):
    return ModelId.from_wildcards(wildcards, name_key)


def corpus_dir(wildcards):
    spec = config["corpora"][wildcards.corpus]
    return spec["path"] if "path" in spec else f"results/corpora/{wildcards.corpus}"


def tokenizer_dir(wildcards):
    return corpus_tokenizer(wildcards.corpus)


def audited_of(model):
    return PROVENANCE.audited_of(model)


def model_tokenizer_dir(wildcards):
    """An audited model's own tokenizer (its entry's, or its folder's), else the corpus'."""
    audited = audited_of(model_of(wildcards))
    return audited.tokenizer if audited else tokenizer_dir(wildcards)


def target_dir(wildcards):
    seed, width = parse_pair(wildcards.pair)
    return base_model_dir(wildcards.corpus, seed, "target", width)


def model_path(model):
    if model.role in BASE_ROLES:
        return base_model_dir(model.corpus, model.target_seed, model.name, model.width)
    if model.role == "audited":
        return audited_of(model).path
    return f"results/unlearned/{model.folder}"


def model_dir(wildcards):
    return model_path(model_of(wildcards))


def record_of(model):
    """A grid model's unlearning record; a served adapter's is its adapter's (a merged one writes its own)."""
    return (
        f"results/unlearned/{(model.trained if served(model) else model).folder}.json"
    )


def adapter_dir(wildcards):
    """The adapter a serving serves, as its unlearn job wrote it."""
    return model_path(model_of(wildcards).trained)


def adapter_record(wildcards):
    return adapter_dir(wildcards) + ".json"


def served_target(wildcards):
    """The target as the format stores it, which a served adapter runs on: its quantized checkpoint for the saved
    formats, its own checkpoint otherwise (full precision, or a format applied on load).
    """
    if wildcards.format in SAVED_FORMATS:
        return quantized_path(model_of(wildcards).sibling("target"), wildcards.format)
    return target_dir(wildcards)


def unlearned_dir(wildcards):
    return model_path(model_of(wildcards, "unlearned"))


def unlearning_lr(model):
    """The lr a model was unlearned at: the grid's from its name, an audited model's if its entry says it."""
    audited = audited_of(model)
    return audited.lr if audited else float(model.unlearned.lr)


def quantized_path(model, format_id):
    return f"results/quantized/{model.folder}/{format_id}"


def quantized_dir(wildcards):
    return quantized_path(model_of(wildcards), wildcards.format)


def checkpoint_rule_input(wildcards):
    """MUSE's checkpoint rule compares with the retrain model's KnowMem-forget, which the unlearning job
    measures itself (so evaluation settings do not reach unlearning)."""
    if config["unlearning"]["checkpoint"] == "muse":
        seed, width = parse_pair(wildcards.pair)
        return {"retrain": base_model_dir(wildcards.corpus, seed, "retrain", width)}
    return {}


def quantizer_of(format_id):
    """The format's quantizer, whose backend loads the model for evaluation; None: the checkpoint as saved."""
    return FORMATS[format_id]["quantizer"] if format_id in FORMATS else None


def attacked_dir(wildcards):
    return f"results/attacked/{model_of(wildcards).folder}/{wildcards.format}"


def evaluation_checkpoint(wildcards):
    if wildcards.format in ATTACK_SPECS:
        return attacked_dir(wildcards)
    return (
        quantized_dir(wildcards)
        if wildcards.format in SAVED_FORMATS
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


# What each job and each result depends on (provenance.py): every value a rule reads from the config, as params.
def real_width(corpus):
    """A real corpus' target's hidden size (its config.json; check_config checked that the folder exists)."""
    with stop_on_error():
        return hidden_size(config["corpora"][corpus]["target"])


PROVENANCE = Provenance(
    config,
    FORMATS,
    ATTACK_SPECS,
    AUDITED,
    {c: real_width(c) for c in CORPORA if "embedded" not in config["corpora"][c]},
)


def job_resources(rule):
    """The config's resources for a rule: its own entry over `default`."""
    spec = config["resources"]
    return {**spec["default"], **spec.get(rule, {})}


def quantized_output(path):
    """Quantized checkpoints are temporary when the config says not to keep them."""
    folder = directory(path)
    return folder if config["quantization"]["keep_checkpoints"] else temp(folder)
