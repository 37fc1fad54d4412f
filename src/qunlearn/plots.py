"""The study's figures (seaborn), each from results/summary.csv."""

from pathlib import Path

import pandas as pd

from .io import atomic_path
from .summary import FORGET_METRICS, unlearned_rows
from .tables import precision_label


def _seaborn():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; set before seaborn imports pyplot
    import seaborn

    return seaborn


def _tidy(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.assign(
        precision=[precision_label(q, b) for q, b in zip(summary["quantizer"], summary["bits"])],
        run=[m if m in ("target", "retrain") else m.replace("_lr", " lr ") for m in summary["model"]],
    )


def _save(grid, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as staging:
        grid.savefig(staging, dpi=120, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close("all")


def forget_across_precisions(summary: pd.DataFrame, path: str | Path) -> None:
    """Each forget metric at every precision, one line per model: recovery shows as a rise after quantization."""
    tidy = _tidy(summary[summary["model"] != "retrain"]).melt(
        id_vars=["corpus", "run", "precision"], value_vars=list(FORGET_METRICS), var_name="metric")
    grid = _seaborn().catplot(tidy, x="precision", y="value", hue="run", row="corpus", col="metric", kind="point",
                       height=3.2, aspect=1.4, sharey=False)
    grid.tick_params(axis="x", rotation=45)
    _save(grid, path)


def forget_vs_utility(summary: pd.DataFrame, path: str | Path) -> None:
    """KnowMem-forget against KnowMem-retain at each precision: lower left is forgetting without utility loss."""
    grid = _seaborn().relplot(_tidy(summary), x="knowmem_r", y="knowmem_f", hue="run", style="corpus", col="precision",
                       col_wrap=3, height=3, s=60)
    _save(grid, path)


def recovery_ratios(summary: pd.DataFrame, path: str | Path) -> None:
    """The paper's headline quantity per quantizer and bits: forget metric / the target's at that precision."""
    tidy = _tidy(unlearned_rows(summary)).melt(id_vars=["corpus", "method", "precision"],
                                               value_vars=[f"{m}_ratio" for m in FORGET_METRICS],
                                               var_name="metric", value_name="recovery ratio")
    grid = _seaborn().catplot(tidy, x="precision", y="recovery ratio", hue="method", col="metric", kind="bar", height=3.2,
                       aspect=1.5)
    grid.tick_params(axis="x", rotation=45)
    _save(grid, path)


def same_code_against_lr(summary: pd.DataFrame, path: str | Path) -> None:
    """The mechanism: the fraction of quantized weights equal to the target's, against the learning rate."""
    rows = _tidy(summary[summary["same_code"].notna()]) if "same_code" in summary else summary.iloc[:0]
    grid = _seaborn().relplot(rows, x="lr", y="same_code", hue="method", style="precision", col="corpus", kind="line",
                       markers=True, height=3.2)
    grid.set(xscale="log")
    _save(grid, path)


DRAW = {  # keyed by grid.FIGURES
    "forget_across_precisions": forget_across_precisions,
    "forget_vs_utility": forget_vs_utility,
    "recovery_ratios": recovery_ratios,
    "same_code_against_lr": same_code_against_lr,
}
