"""How many epochs unlearning needs (docs/calibration.md): each unlearned model's full-precision forget ratios after
the epochs it measured (`unlearning.epoch_metrics`), averaged over targets, and the fewest epochs after which they
have settled. Only full-precision metrics enter: no quantized number may choose the unlearning length.

Usage: python -m qunlearn.analysis.calibration [RESULTS_DIR] [--corpus C] [--tolerance T] [--figure PNG]
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from qunlearn.config.naming import UnlearnedName, parse_pair
from qunlearn.errors import QunlearnError
from qunlearn.io import atomic_path

FORGET_METRICS = ("verbmem_f", "knowmem_f")  # the ratios the rule reads
METRICS = (*FORGET_METRICS, "knowmem_r")  # what the curves show
CELL = ["method", "lr", "stack", "width"]  # one curve each (width: a rung's hidden size as text, "" the run's own)


def epoch_table(record_files: list[Path]) -> pd.DataFrame:
    """One row per unlearned model × measured epoch: method, lr, stack, target seed, epoch, and each metric's ratio
    to its own target's full-precision value (results/metrics/{corpus}/t{seed}/target/full.json beside the
    record's results/unlearned/{corpus}/t{seed}/{name}.json)."""
    rows = []
    for record_file in map(Path, record_files):
        results, corpus, pair = record_file.parents[3], record_file.parent.parent.name, record_file.parent.name
        target = json.loads((results / "metrics" / corpus / pair / "target" / "full.json").read_text())
        name = UnlearnedName.parse(record_file.stem)
        for record in json.loads(record_file.read_text())["history"]:
            if all(metric in record for metric in METRICS):
                seed, width = parse_pair(pair)
                rows.append({"method": name.method, "lr": name.lr, "stack": name.stack, "width": str(width or ""),
                             "target_seed": seed, "epoch": record["epoch"],
                             **{metric: record[metric] / target[metric] for metric in METRICS}})
    if not rows:
        raise QunlearnError(f"none of {len(record_files)} unlearned models recorded {', '.join(METRICS)} after its "
                            "epochs", "run with unlearning.epoch_metrics: [verbmem_f, knowmem_f, knowmem_r] "
                            "(presets/unlearning-length.yaml)")
    return pd.DataFrame(rows)


def mean_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per method, lr, stack and epoch: each ratio's mean over targets, and how many targets it averages."""
    grouped = table.groupby([*CELL, "epoch"])
    return grouped[list(METRICS)].mean().join(grouped.size().rename("targets")).reset_index()


def settled_epoch(curves: pd.DataFrame, tolerance: float = 0.02) -> int:
    """The rule: the fewest measured epochs e such that, in every method × lr × stack, both forget ratios (mean over
    targets) at e and at every later measured epoch are within `tolerance` of their value at the last epoch."""
    settled_from = []
    for _, cell in curves.groupby(CELL):
        cell = cell.sort_values("epoch")
        last = cell.iloc[-1]
        off = (cell[list(FORGET_METRICS)] - last[list(FORGET_METRICS)]).abs().gt(tolerance).any(axis=1)
        unsettled = cell["epoch"][off]
        later = cell["epoch"][cell["epoch"] > unsettled.max()] if len(unsettled) else cell["epoch"]
        settled_from.append(int(later.min()))
    return max(settled_from)


def plot_curves(curves: pd.DataFrame, chosen: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    long = curves.melt(id_vars=[*CELL, "epoch"], value_vars=list(METRICS), var_name="metric",
                       value_name="ratio to the target")
    long["unlearning"] = (long["method"] + " lr " + long["lr"] + " " + long["stack"]
                          + long["width"].map(lambda w: f" w{w}" if w else ""))
    grid = sns.relplot(long, x="epoch", y="ratio to the target", hue="unlearning", col="metric", kind="line",
                       marker="o", height=3.2, aspect=1.1)
    for ax in grid.axes.flat:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1)
    grid.figure.suptitle(f"Full-precision metrics after each measured epoch, mean over targets (chosen: {chosen})",
                         y=1.03)
    with atomic_path(out) as staging:
        grid.savefig(staging, dpi=110, bbox_inches="tight", format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--corpus", default="toy-news")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--figure", type=Path, help="write the curves here (PNG)")
    args = parser.parse_args()
    curves = mean_curves(epoch_table(sorted((args.results / "unlearned" / args.corpus).glob("t*/*.json"))))
    chosen = settled_epoch(curves, args.tolerance)
    print(curves.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"settled_epoch={chosen} (both forget ratios within {args.tolerance} of their last value from there on, "
          "in every method, lr and stack)")
    if args.figure:
        plot_curves(curves, chosen, args.figure)


if __name__ == "__main__":
    main()
