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
TARGET_FOLDER = re.compile(r"^t(\d+)$")


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

    @classmethod
    def parse(cls, name: str) -> "UnlearnedName":
        """'npo_gdr_sure_lr1e-4_bf16_s0' -> UnlearnedName('npo_gdr_sure', '1e-4', 'bf16', 0)."""
        method, rest = name.rsplit("_lr", 1)
        lr, stack, seed = rest.split("_")
        return cls(method, lr, stack, int(seed.removeprefix("s")))


# The shape of UnlearnedName's names: the unlearn rule's wildcard constraint, and what audit labels may not end in.
GRID_NAME_PATTERN = r"[a-z_]+_lr[^_/]+_[^_/]+_s[0-9]+"
GRID_NAME = re.compile(GRID_NAME_PATTERN + "$")


def unlearned_name(method: str, lr: float, precision: str, seed: int) -> str:
    return str(UnlearnedName(method, format_lr(lr), precision, seed))


def target_folder(target_seed: int) -> str:
    """The folder level that holds a target seed's models and results: t0, t1, ..."""
    return f"t{target_seed}"


def parse_target_folder(folder: str) -> int:
    match = TARGET_FOLDER.match(folder)
    if not match:
        raise ValueError(f"{folder!r} is not a target folder (t0, t1, ...)")
    return int(match.group(1))


@dataclass(frozen=True)
class ModelId:
    """corpus / target seed / name, where the name is `target`, `retrain`, a grid name or an audited label
    (audit mode refuses labels that look like either of the first three)."""
    corpus: str
    target_seed: int
    name: str

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
    def folder(self) -> str:
        """Its place under each results kind: {corpus}/t{seed}/{name}."""
        return f"{self.corpus}/{target_folder(self.target_seed)}/{self.name}"

    @classmethod
    def from_wildcards(cls, wildcards, name_key: str = "model") -> "ModelId":
        return cls(wildcards.corpus, parse_target_folder(wildcards.pair), getattr(wildcards, name_key))
