"""The width ladder's calibration (docs/calibration.md, "Widths"), as a user runs it: for one rung of a config's
model.widths, its base pretrained as the run's own is (or, if its last-epoch loss is not below the run's own base's,
again at the fallback lr), then the fine-tuning recipes in the rule's order, each trained and evaluated at full
precision by the workflow itself, until one meets the rule in every target. Only the bases' training losses and the
targets' and retrain models' full-precision metrics are read. The rule is a conjunction over targets, so a recipe
is tried on the first target seed first and on the others only if that one meets it.

Usage: python -m qunlearn.analysis.width_recipes CONFIG HIDDEN [--cores N]
(in the run's folder; prints each recipe's margins and writes results/calibration/width-{HIDDEN}.csv)
"""

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from qunlearn.analysis.widths import target_calibration
from qunlearn.config.naming import base_folder, target_folder
from qunlearn.errors import QunlearnError, explained
from qunlearn.io import read_json, write_text

# (epochs, lr) of fine-tuning, in the order the rule tries them; the first is the run's own default.
RECIPES = ((40, 3e-3), (40, 1e-3), (60, 1e-3), (80, 1e-3), (60, 5e-4))
FALLBACK_PRETRAIN_LR = 1e-3  # for a rung whose base does not train at the run's own pretraining lr
WORKFLOW = Path(__file__).resolve().parents[3]  # the repository: its Snakefile runs every job


def the_rung(config: dict, hidden: int) -> dict:
    """The config's rung of this hidden size, or a clear error naming the rungs there are."""
    rungs = [r for r in config.get("model", {}).get("widths", []) if r["hidden"] == hidden]
    if not rungs:
        listed = [r["hidden"] for r in config.get("model", {}).get("widths", [])]
        raise QunlearnError(f"{hidden} is not a rung of the config's model.widths (its rungs: {listed})",
                            "name one of them, or add {hidden: %d} to model.widths" % hidden)
    return rungs[0]


def with_recipe(config: dict, hidden: int, epochs: int, lr: float, pretrain_lr: float | None) -> dict:
    """The config with only this rung on the ladder, fine-tuned by the recipe and pretrained as the run's own base
    is, or at `pretrain_lr` (any recipe the config's rung already names is replaced)."""
    rung = {key: value for key, value in the_rung(config, hidden).items() if key not in ("pretrain", "finetune")}
    rung["finetune"] = {"epochs": epochs, "lr": lr}
    if pretrain_lr is not None:
        rung["pretrain"] = {"lr": pretrain_lr}
    return {**config, "model": {**config["model"], "widths": [rung]}}


def metric_file(corpus: str, seed: int, hidden: int, role: str) -> str:
    return f"results/metrics/{corpus}/{target_folder(seed, hidden)}/{role}/full.json"


def metric_files(corpora: list[str], seeds: list[int], hidden: int) -> list[str]:
    return [metric_file(corpus, seed, hidden, role) for corpus in corpora for seed in seeds
            for role in ("target", "retrain")]


def read_targets(corpora: list[str], seeds: list[int], hidden: int) -> pd.DataFrame:
    """The rule's reading of these targets, from their evaluation files (as the summary would hold them)."""
    rows = [{"corpus": corpus, "rung": hidden, "width": hidden, "target_seed": seed, "model": role,
             "quantizer": "none", "attack": "", **read_json(metric_file(corpus, seed, hidden, role))}
            for corpus in corpora for seed in seeds for role in ("target", "retrain")]
    return target_calibration(pd.DataFrame(rows))


def run_workflow(config: dict, targets: list[str], cores: int) -> None:
    """The workflow on these files under this config (kept as results/calibration/width-recipe.yaml, the last tried)."""
    path = Path("results/calibration/width-recipe.yaml")
    write_text(path, yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(WORKFLOW / "Snakefile"), "--configfile", str(path),
               "--cores", str(cores), *targets]
    if subprocess.run(command).returncode:
        raise QunlearnError(f"the workflow failed on {' '.join(targets)}", "see the log named above, fix, and re-run")


def last_loss(width: int | None) -> float:
    """A base's pretraining loss at its last epoch (its training.json)."""
    return read_json(f"results/models/{base_folder(width)}/training.json")[-1]["loss"]


def pretraining_lr(config: dict, hidden: int, cores: int) -> tuple[float | None, dict]:
    """The rung's pretraining lr by the rule (None: the run's own), and the losses it was read from."""
    bases = ["results/models/base", f"results/models/{base_folder(hidden)}"]
    run_workflow(with_recipe(config, hidden, *RECIPES[0], None), bases, cores)
    losses = {"base_loss": last_loss(None), "rung_base_loss": last_loss(hidden)}
    print(f"pretraining loss at the last epoch: the run's own base {losses['base_loss']:.4f}, the rung's "
          f"{losses['rung_base_loss']:.4f}", flush=True)
    if losses["rung_base_loss"] < losses["base_loss"]:
        return None, losses
    run_workflow(with_recipe(config, hidden, *RECIPES[0], FALLBACK_PRETRAIN_LR), bases[1:], cores)
    losses["fallback_base_loss"] = last_loss(hidden)
    print(f"the rung's at pretraining lr {FALLBACK_PRETRAIN_LR:g}: {losses['fallback_base_loss']:.4f}", flush=True)
    return FALLBACK_PRETRAIN_LR, losses


def calibrate(config: dict, hidden: int, cores: int) -> pd.DataFrame:
    """Every recipe tried, in order, until one meets the rule in every target; one row per target and recipe."""
    corpora = [name for name, spec in config["corpora"].items() if "embedded" in spec]
    if not corpora:
        raise QunlearnError("the config has no embedded corpus, whose models a rung trains",
                            "calibrate with a config that has one (presets/widths.yaml)")
    seeds = the_rung(config, hidden).get("seeds", config["model"].get("seeds", [0]))
    pretrain_lr, losses = pretraining_lr(config, hidden, cores)
    tried = []
    for epochs, lr in RECIPES:
        recipe = with_recipe(config, hidden, epochs, lr, pretrain_lr)
        for batch in (seeds[:1], seeds[1:]):  # the first target, then the rest if it passes
            if not batch:
                continue
            run_workflow(recipe, metric_files(corpora, batch, hidden), cores)
            found = read_targets(corpora, batch, hidden).assign(epochs=epochs, lr=lr, pretrain_lr=pretrain_lr,
                                                                **losses)
            tried.append(found)
            # significant digits, not decimals: a fixed 1-decimal format printed the lrs (1e-3) as 0.0
            print(found.to_string(index=False, float_format=lambda x: f"{x:.4g}"), flush=True)
            if not found["meets_rule"].all():
                break
        else:
            return pd.concat(tried, ignore_index=True)
    return pd.concat(tried, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("hidden", type=int)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    try:
        if not args.config.is_file():
            raise QunlearnError(f"config file {args.config} does not exist", "name a config, e.g. presets/widths.yaml")
        tried = calibrate(yaml.safe_load(args.config.read_text()), args.hidden, args.cores)
    except QunlearnError as error:
        raise SystemExit(explained(error)) from None
    write_text(f"results/calibration/width-{args.hidden}.csv", tried.to_csv(index=False))


if __name__ == "__main__":
    main()
