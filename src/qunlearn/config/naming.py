"""Which model a result belongs to: one type, parsed from and formatted to the workflow's names in one place.

A model of the study is a corpus' target or retrain model, one the grid unlearned from that target, or one
unlearned elsewhere and audited by path. Every target comes with its fine-tuning seed (the embedded benchmark
fine-tunes one target and retrain pair per seed of `model.seeds`; a real corpus has one pair, seed 0), and every
unlearned model is unlearned from, and compared with, the target of its own seed. Torch-free: the Snakefile
builds the grid from these names at every start.
"""

import re
from dataclasses import dataclass

import numpy as np

BASE_ROLES = ("target", "retrain")
# t0 holds target seed 0's models at the run's own width (model.hidden), t0-w512 those of the width ladder's rung
# at hidden 512 (model.widths): every path and hash of the default width stays as it was before the ladder.
TARGET_FOLDER = re.compile(r"^t(\d+)(?:-w(\d+))?$")
# How an adapter unlearned by the grid is served (docs/adapters.md), each its own model: merged into the target
# loaded in bf16 or fp32 (a checkpoint, quantized like any model), or unmerged on top of the target in each format,
# the adapter at full precision or itself rounded to 4 bits.
MERGED_DTYPES = {"merged-bf16": "bf16", "merged-fp32": "fp32"}
UNMERGED_SERVINGS = ("served", "served-q4")
ADAPTER_SERVINGS = (*MERGED_DTYPES, *UNMERGED_SERVINGS)
# Every linear layer of a Llama decoder block: the adapters' default target modules (QLoRA's choice, and
# open-unlearning's LoRA config's).
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def format_lr(lr: float) -> str:
    """One spelling per value, the shortest that reads back exactly: 1e-5, 1.0e-5 and 0.00001 name the same jobs,
    and 1.5e-5 stays 1.5e-5 (never rounded into another lr's name)."""
    return np.format_float_scientific(float(lr), trim="-", exp_digits=1)


@dataclass(frozen=True)
class UnlearnedName:
    """What a grid-unlearned model's name (its folder's too) says: npo_gdr_sure_lr1e-4_bf16_s0."""
    method: str
    lr: str  # as format_lr spells it
    stack: str  # the precision stack while unlearning
    seed: int  # the unlearning seed (data order)

    def __str__(self) -> str:
        return f"{self.method}_lr{self.lr}_{self.stack}_s{self.seed}"

    # An adapter's names put it where a full-weight model's stack is: `lora-r8a16` for the unlearned adapter itself
    # (a folder with the adapter only, never evaluated as such) and `lora-r8a16+merged-bf16` for each of its servings.
    @property
    def adapter(self) -> str | None:
        """The adapter's id (lora-r8a16), None for a full-weight model."""
        return self.stack.split("+")[0] if self.stack.startswith("lora-") else None

    @property
    def serving(self) -> str | None:
        """How an adapter is served (ADAPTER_SERVINGS), None for the adapter itself and for full-weight models."""
        return self.stack.partition("+")[2] or None

    @property
    def unmerged(self) -> bool:
        """An adapter served on the target in each format: no checkpoint of its own."""
        return self.serving in UNMERGED_SERVINGS

    @property
    def trained(self) -> str:
        """The name of the model unlearning wrote: this one, or the adapter a serving serves."""
        return str(UnlearnedName(self.method, self.lr, self.adapter, self.seed)) if self.serving else str(self)

    @classmethod
    def parse(cls, name: str) -> "UnlearnedName":
        """'npo_gdr_sure_lr1e-4_bf16_s0' -> UnlearnedName('npo_gdr_sure', '1e-4', 'bf16', 0)."""
        method, rest = name.rsplit("_lr", 1)
        lr, stack, seed = rest.split("_")
        return cls(method, lr, stack, int(seed.removeprefix("s")))


# The shape of UnlearnedName's names: the unlearn rule's wildcard constraint, and what audit labels may not end in.
GRID_NAME_PATTERN = r"[a-z_]+_lr[^_/]+_[^_/]+_s[0-9]+"
GRID_NAME = re.compile(GRID_NAME_PATTERN + "$")
# What the unlearn rule writes (a full-weight model or an adapter, never a serving), and the merge rule.
TRAINED_NAME_PATTERN = r"[a-z_]+_lr[^_/]+_[^_/+]+_s[0-9]+"
MERGED_NAME_PATTERN = r"[a-z_]+_lr[^_/]+_lora-[^_/+]+\+(?:" + "|".join(MERGED_DTYPES) + r")_s[0-9]+"
SERVED_NAME_PATTERN = r"[a-z_]+_lr[^_/]+_lora-[^_/+]+\+(?:" + "|".join(UNMERGED_SERVINGS) + r")_s[0-9]+"


def adapter_id(rank: int, alpha: float) -> str:
    """lora-r8a16: the adapter's rank and alpha (alpha / rank scales its delta)."""
    return f"lora-r{rank}a{float(alpha):g}"


def unlearned_name(method: str, lr: float, precision: str, seed: int) -> str:
    return str(UnlearnedName(method, format_lr(lr), precision, seed))


def target_folder(target_seed: int, width: int | None = None) -> str:
    """The folder level that holds a target's models and results: t0, t1, ... at the run's width, t0-w512 at a
    rung of the width ladder."""
    return f"t{target_seed}" if width is None else f"t{target_seed}-w{width}"


def _rung_suffix(widths) -> str:
    """None: any width; else only these rungs (none: the run's own width alone)."""
    if widths is None:
        return "(?:-w[0-9]+)?"
    widths = [str(int(w)) for w in widths]
    return f"(?:-w(?:{'|'.join(widths)}))?" if widths else ""


def target_folder_pattern(widths=()) -> str:
    """The target folders of a run whose rungs are `widths` (a path at another width names no job; None: any)."""
    return "t[0-9]+" + _rung_suffix(widths)


def base_folder_pattern(widths=()) -> str:
    """The base folders of a run whose rungs are `widths` (None: any)."""
    return "base" + _rung_suffix(widths)


def parse_pair(folder: str) -> tuple[int, int | None]:
    """t1 -> (1, None); t1-w512 -> (1, 512)."""
    match = TARGET_FOLDER.match(folder)
    if not match:
        raise ValueError(f"{folder!r} is not a target folder (t0, t1, ..., or t0-w512 for a width rung)")
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def parse_target_folder(folder: str) -> int:
    """The target seed of a target folder."""
    return parse_pair(folder)[0]


def base_folder(width: int | None = None) -> str:
    """The pretrained base's folder under results/models: base, or base-w512 for a width rung."""
    return "base" if width is None else f"base-w{width}"


def parse_base_folder(folder: str) -> int | None:
    """base -> None (the run's own width), base-w512 -> 512."""
    return None if folder == "base" else int(folder.removeprefix("base-w"))


@dataclass(frozen=True)
class ModelId:
    """corpus / target seed / name, where the name is `target`, `retrain`, a grid name or an audited label
    (audit mode refuses labels that look like either of the first three)."""
    corpus: str
    target_seed: int
    name: str
    width: int | None = None  # a width rung's hidden size (model.widths); None: the run's own width

    @property
    def role(self) -> str:
        """target, retrain, unlearned (the grid's) or audited."""
        if self.name in BASE_ROLES:
            return self.name
        return "unlearned" if GRID_NAME.search(self.name) else "audited"

    @property
    def unlearned(self) -> UnlearnedName | None:
        return UnlearnedName.parse(self.name) if self.role == "unlearned" else None

    @property
    def trained(self) -> "ModelId":
        """The model its unlearning job wrote: itself, or for an adapter's serving the adapter."""
        return ModelId(self.corpus, self.target_seed, self.unlearned.trained, self.width)

    @property
    def pair(self) -> str:
        """The folder of its target and retrain pair: t0, or t0-w512 at a width rung."""
        return target_folder(self.target_seed, self.width)

    @property
    def folder(self) -> str:
        """Its place under each results kind: {corpus}/t{seed}/{name}, or {corpus}/t{seed}-w{width}/{name}."""
        return f"{self.corpus}/{self.pair}/{self.name}"

    def sibling(self, name: str) -> "ModelId":
        """Another model of the same target (its target, retrain, or another unlearned model)."""
        return ModelId(self.corpus, self.target_seed, name, self.width)

    @classmethod
    def from_wildcards(cls, wildcards, name_key: str = "model") -> "ModelId":
        seed, width = parse_pair(wildcards.pair)
        return cls(wildcards.corpus, seed, getattr(wildcards, name_key), width)
