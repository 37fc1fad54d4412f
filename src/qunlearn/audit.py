"""Audit mode: unlearned models brought by path (per corpus, `unlearned: {label: path | {path, ...}}`), checked when
the workflow starts, so that a wrong folder fails at once with the key to fix instead of hours later inside a
library. Torch-free: the Snakefile runs these checks at every start, dry runs included."""

from dataclasses import dataclass
from pathlib import Path

from qunlearn.config.naming import BASE_ROLES, GRID_NAME
from qunlearn.errors import QunlearnError
from qunlearn.models.files import model_config, tensor_shapes, tokenizer_vocabulary

TIED_HEAD = "lm_head.weight"  # absent from checkpoints that tie it to the embedding
# config.json fields that fix a Llama's tensor shapes, and the embedded benchmark's config keys that set them.
ARCHITECTURE = {"hidden_size": "hidden", "num_hidden_layers": "layers", "num_attention_heads": "heads",
                "intermediate_size": "intermediate"}


@dataclass(frozen=True)
class AuditedModel:
    label: str
    path: str
    tokenizer: str  # the folder its quantization and evaluation tokenize with
    method: str = ""
    lr: float | None = None
    stack: str = ""
    target_seed: int = 0  # the target it was unlearned from (embedded corpora fine-tune one per seed of model.seeds)


@dataclass(frozen=True)
class AuditTarget:
    """What an audited model of one corpus must match: its target (a folder, which may not exist yet for an
    embedded corpus, whose architecture is then `architecture`) and the corpus' tokenizer folder."""
    target: str
    tokenizer: str
    architecture: dict | None = None


def audited_models(corpora: dict, audit_targets: dict[tuple[str, int], AuditTarget], target_seeds: dict[str, list[int]],
                   grid_names: list[str]) -> dict[str, dict[str, AuditedModel]]:
    """Per corpus, its audited models in the config's order, each checked against its target
    (`audit_targets` by corpus and target seed; an entry without `target_seed` takes the corpus' first)."""
    return {corpus: _corpus_models(corpus, spec.get("unlearned", {}), audit_targets, target_seeds[corpus], grid_names)
            for corpus, spec in corpora.items()}


def _corpus_models(corpus: str, entries: dict, audit_targets: dict[tuple[str, int], AuditTarget],
                   target_seeds: list[int], grid_names: list[str]) -> dict[str, AuditedModel]:
    """One corpus' audited models; one folder under two labels would be evaluated twice as two models."""
    models, labels = {}, {}  # labels: folder -> the label that audits it
    for label, entry in entries.items():
        key = f"corpora.{corpus}.unlearned.{label}"
        model = _checked(key, label, entry, audit_targets, corpus, target_seeds, grid_names)
        folder = Path(model.path).resolve()
        if folder in labels:
            raise QunlearnError(f"{key}: the folder {model.path} is also audited as {labels[folder]!r}",
                                f"keep one of the labels {labels[folder]!r} and {label!r}")
        labels[folder] = label
        models[label] = model
    return models


def _checked(key: str, label: str, entry: str | dict, audit_targets: dict[tuple[str, int], AuditTarget], corpus: str,
             target_seeds: list[int], grid_names: list[str]) -> AuditedModel:
    entry = {"path": entry} if isinstance(entry, str) else entry
    try:
        _check_label(label, grid_names)
        seed = entry.get("target_seed", target_seeds[0])
        if seed not in target_seeds:
            raise QunlearnError(f"target_seed {seed} is not a target of this corpus (its seeds: {target_seeds})",
                                "give the seed of the target the model was unlearned from, one of model.seeds")
        audit_target = audit_targets[(corpus, seed)]
        model = AuditedModel(label=label, tokenizer=_tokenizer_of(entry, audit_target), **{
            k: v for k, v in {**entry, "target_seed": seed}.items() if k != "tokenizer"})
        _check_model(model, audit_target)
    except QunlearnError as error:
        raise QunlearnError(f"{key}: {error.problem}", error.fix) from None
    return model


def _check_label(label: str, grid_names: list[str]) -> None:
    if label in BASE_ROLES or label in grid_names or GRID_NAME.search(label):
        raise QunlearnError(f"the label {label!r} collides with the name of a model the workflow makes "
                            f"({'/'.join(BASE_ROLES)}, or the grid's {{method}}_lr{{lr}}_{{stack}}_s{{seed}})",
                            "rename the label (for example my-npo-run)")


def _tokenizer_of(entry: dict, audit_target: AuditTarget) -> str:
    """The entry's `tokenizer`, else the model folder when it holds one, else the corpus' tokenizer."""
    if "tokenizer" in entry:
        if not Path(entry["tokenizer"]).is_dir():
            raise QunlearnError(f"tokenizer folder {entry['tokenizer']} does not exist", "point `tokenizer` at a local folder")
        return entry["tokenizer"]
    return entry["path"] if (Path(entry["path"]) / "tokenizer.json").is_file() else audit_target.tokenizer


def _check_model(model: AuditedModel, audit_target: AuditTarget) -> None:
    shapes = tensor_shapes(model.path)  # reading every shard's header checks the checkpoint too
    config = model_config(model.path)
    vocabulary = tokenizer_vocabulary(model.tokenizer) if Path(model.tokenizer).is_dir() else None
    if Path(audit_target.target).is_dir():
        target_shapes = tensor_shapes(audit_target.target)
        _check_embedding_rows(shapes, target_shapes, config, model.tokenizer, vocabulary)
        _check_shapes(shapes, target_shapes, audit_target.target)
    elif audit_target.architecture is not None:
        _check_architecture(config, audit_target.architecture)
    if vocabulary is not None:
        _check_vocabulary(model, vocabulary, config, audit_target)


def _check_embedding_rows(shapes: dict, target_shapes: dict, config: dict, tokenizer: str,
                          vocabulary: dict | None) -> None:
    """An embedding (and lm_head) with another number of rows than the target's, said as such rather than as an
    architecture mismatch: padded past the tokenizer (vocab_size in config.json above its length), or another
    vocabulary altogether."""
    rows = config.get("vocab_size")
    target_rows = [target_shapes[name][0] for name, shape in shapes.items()
                   if shape[0] == rows and name in target_shapes and target_shapes[name][0] != rows
                   and target_shapes[name][1:] == shape[1:]]
    if not target_rows:
        return
    problem = f"the embedding has {rows} rows (vocab_size in config.json), the target's {target_rows[0]}"
    if vocabulary is not None and rows > len(vocabulary):
        raise QunlearnError(f"{problem}, and the tokenizer {tokenizer} has {len(vocabulary)} tokens: the embedding was "
                            "padded past the tokenizer",
                            "if the model was trained with a larger tokenizer, give that one with `tokenizer:` in the "
                            "entry; if the extra rows are padding, trim them "
                            f"(model.resize_token_embeddings({target_rows[0]}), then save_pretrained)")
    raise QunlearnError(f"{problem}: another vocabulary than the target's",
                        "audit a model unlearned from this corpus' target, with its tokenizer "
                        "(`tokenizer:` in the entry)")


def _check_shapes(shapes: dict, target_shapes: dict, target: str) -> None:
    """Every tensor of the target in the model (`shapes`) with the same shape, and no other (a tied or untied
    lm_head aside): the mechanism compares the two weight by weight."""
    for name in sorted((shapes.keys() ^ target_shapes.keys()) - {TIED_HEAD}):
        where = "the model" if name in shapes else "the target"
        raise QunlearnError(f"{name} is only in {where}: the checkpoint's architecture differs from the target {target}",
                            "audit a model unlearned from this corpus' target (the same architecture and sizes)")
    for name, shape in shapes.items():
        if name in target_shapes and shape != target_shapes[name]:
            raise QunlearnError(f"{name} has shape {list(shape)}, the target's {list(target_shapes[name])} ({target}): "
                                "the mechanism compares the two weight by weight",
                                "audit a model unlearned from this corpus' target (the same architecture and sizes)")


def _check_architecture(config: dict, architecture: dict) -> None:
    """Before the embedded target exists: the sizes in config.json against the config's `model`."""
    for field, key in ARCHITECTURE.items():
        if config.get(field) != architecture[key]:
            raise QunlearnError(f"config.json's {field} is {config.get(field)}, the embedded target's model.{key} "
                                f"{architecture[key]}", "audit a model unlearned from this corpus' target")


def _check_vocabulary(model: AuditedModel, vocabulary: dict, config: dict, audit_target: AuditTarget) -> None:
    """The tokenizer has an embedding row for every token, and tokenizes as the target's does (when that one exists):
    otherwise the metrics would not compare with the target's."""
    rows = config.get("vocab_size")
    if rows is None or len(vocabulary) > rows:
        raise QunlearnError(f"the tokenizer {model.tokenizer} has {len(vocabulary)} tokens, the model's embedding "
                            f"{rows} rows", "give the tokenizer the model was trained with (`tokenizer:` in the entry)")
    if model.tokenizer != audit_target.tokenizer and Path(audit_target.tokenizer).is_dir() \
            and vocabulary != tokenizer_vocabulary(audit_target.tokenizer):
        raise QunlearnError(f"the tokenizer {model.tokenizer} has another vocabulary than the corpus' tokenizer "
                            f"{audit_target.tokenizer}", "give the target's tokenizer (`tokenizer:` in the entry)")
