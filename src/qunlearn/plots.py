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
    """With `precision` and `run` (a model's label) for the axes and legends, and `unlearned as`: the precision
    while unlearning, or an audited model's label."""
    return summary.assign(
        precision=[precision_label(q, b) for q, b in zip(summary["quantizer"], summary["bits"])],
        run=[m if m in ("target", "retrain") else m.replace("_lr", " lr ").replace("_", " ") for m in summary["model"]],
        **{"unlearned as": [f"{m} (audited)" if a else p for m, a, p in
                            zip(summary["model"], summary["audited"], summary["unlearn_precision"])]},
    )


def _save(grid, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as staging:
        grid.savefig(staging, dpi=120, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close("all")


def _with_intervals(tidy: pd.DataFrame, metrics) -> pd.DataFrame:
    """Long form with three rows per point, the value and its interval's bounds (where the summary has them):
    drawn with the median as the estimate and the full range as the error bar, that is the value and its
    bootstrap interval, never an average across models."""
    return pd.concat([tidy[["corpus", "run", "precision"]].assign(metric=metric, value=tidy[column])
                      for metric in metrics for column in (metric, f"{metric}_lo", f"{metric}_hi")
                      if column in tidy], ignore_index=True)


def forget_across_precisions(summary: pd.DataFrame, path: str | Path) -> None:
    """Each forget metric at every precision, one line per model with its 95% bootstrap interval: recovery shows
    as a rise after quantization."""
    tidy = _with_intervals(_tidy(summary[summary["model"] != "retrain"]), FORGET_METRICS)
    grid = _seaborn().catplot(tidy, x="precision", y="value", hue="run", row="corpus", col="metric", kind="point",
                              estimator="median", errorbar=("pi", 100), dodge=0.4, height=3.2, aspect=1.6,
                              sharey=False)
    grid.tick_params(axis="x", rotation=45)
    _save(grid, path)


def forget_vs_utility(summary: pd.DataFrame, path: str | Path) -> None:
    """KnowMem-forget against KnowMem-retain at each precision: lower left is forgetting without utility loss."""
    grid = _seaborn().relplot(_tidy(summary), x="knowmem_r", y="knowmem_f", hue="run", style="corpus", col="precision",
                       col_wrap=3, height=3, s=60)
    _save(grid, path)


def recovery_ratios(summary: pd.DataFrame, path: str | Path) -> None:
    """The paper's headline quantity per quantizer and bits: forget metric / the target's at that precision. A bar
    is the mean over the unlearned models of one precision while unlearning (methods, lrs, seeds), its whiskers
    their range: the spread of the grid, not a confidence interval (recovery.csv has those)."""
    tidy = _tidy(unlearned_rows(summary)).melt(id_vars=["corpus", "unlearned as", "precision"],
                                               value_vars=[f"{m}_ratio" for m in FORGET_METRICS],
                                               var_name="metric", value_name="recovery ratio")
    grid = _seaborn().catplot(tidy, x="precision", y="recovery ratio", hue="unlearned as", row="corpus",
                              col="metric", kind="bar", errorbar=("pi", 100), height=3.2, aspect=1.5)
    grid.tick_params(axis="x", rotation=45)
    _save(grid, path)


def surviving_update_against_lr(summary: pd.DataFrame, path: str | Path) -> None:
    """The mechanism, per format (columns): the fraction of the unlearning update that survives quantization (top)
    and the recovery-ratio change from full precision (bottom) against the learning rate, one line per precision
    while unlearning (the mean over its seeds, bars their range; and one per audited model whose entry gives its
    lr); the dashed line is the lr below which a pure-bf16 update cannot leave the format's zero bin (predicted
    from the target's weights alone)."""
    from matplotlib.ticker import NullFormatter

    quantities = ["surviving_update", "ratio_vs_full"]
    has_lr = summary["lr"].notna()  # audited models whose entry gives no lr cannot be placed
    rows = summary[summary["surviving_update"].notna() & has_lr] if "surviving_update" in summary else summary.iloc[:0]
    tidy = _tidy(rows).melt(id_vars=["corpus", "lr", "unlearned as", "precision"], value_vars=quantities,
                            var_name="quantity")
    grid = _seaborn().relplot(tidy, x="lr", y="value", hue="unlearned as", style="corpus", row="quantity",
                              col="precision", kind="line", marker="o", errorbar=("pi", 100), err_style="bars",
                              height=2.6, facet_kws={"sharey": "row"})
    grid.set(xscale="log")
    grid.set_titles(template="{col_name}")
    for quantity, ax in zip(quantities, grid.axes[:, 0]):
        ax.set_ylabel(quantity)
    thresholds = _tidy(rows).groupby("precision")["bf16_threshold_lr"].median() if len(rows) else {}
    for (_, precision), ax in grid.axes_dict.items():
        if precision in thresholds and pd.notna(thresholds[precision]):
            ax.axvline(thresholds[precision], color="grey", linestyle="--", linewidth=1)
        ax.xaxis.set_minor_formatter(NullFormatter())  # log minor labels overlap on a narrow lr range
    _save(grid, path)


DRAW = {  # keyed by grid.FIGURES
    "forget_across_precisions": forget_across_precisions,
    "forget_vs_utility": forget_vs_utility,
    "recovery_ratios": recovery_ratios,
    "surviving_update_against_lr": surviving_update_against_lr,
}
