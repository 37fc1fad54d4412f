"""The study's figures (seaborn and matplotlib), from results/summary.csv and the headline's recovery tables."""

from pathlib import Path

import numpy as np
import pandas as pd

from qunlearn.analysis.summary import FORGET_METRICS, unattacked, unlearned_rows, without_lone_pool
from qunlearn.io import atomic_path
from qunlearn.registry import FIGURES, resolve
from qunlearn.report.tables import paper_comparison as compare_with_paper
from qunlearn.report.tables import PAPER_METRICS, precision_label

BASE_STYLES = {"target": "--", "retrain": ":"}


def _seaborn():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; set before seaborn imports pyplot
    import seaborn

    return seaborn


def _tidy(summary: pd.DataFrame) -> pd.DataFrame:
    """With `precision` and `run` (a model's label) for the axes and legends, and `unlearned as`: the precision
    stack while unlearning, or an audited model's label."""
    return summary.assign(
        precision=summary["format"].map(precision_label),
        run=[f"{m} t{t}" if m in ("target", "retrain") else f"{m.replace('_lr', ' lr ').replace('_', ' ')} t{t}"
             for m, t in zip(summary["model"], summary["target_seed"])],
        **{"unlearned as": [f"{m} (audited)" if a else p for m, a, p in
                            zip(summary["model"], summary["audited"], summary["stack"])]},
    )


def _save(figure, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as staging:
        figure.savefig(staging, dpi=120, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close("all")


def _save_note(note: str, path: str | Path) -> None:
    """A figure with nothing to draw, saying why (the rule's output must exist)."""
    _seaborn()
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, note, ha="center", va="center")
    _save(figure, path)


def recovery_verdicts(recovery: pd.DataFrame, by_target: pd.DataFrame, margin: float, path: str | Path) -> None:
    """The headline at a glance: per corpus (columns; `all` pools them), the change of the mean recovery ratio from
    full precision for each format, one colour per precision stack: the pooled estimate with its 95% interval over
    targets, seeds and items, and each target's own estimate as a small cross. Above the dashed line at the margin,
    with the interval above 0, is `recovered`; an interval entirely below the margin is `kept`."""
    seaborn = _seaborn()
    import matplotlib.pyplot as plt

    quantized = _tidy_headline(without_lone_pool(recovery))
    targets = _tidy_headline(by_target)
    corpora = list(dict.fromkeys(quantized["corpus"]))
    formats = list(dict.fromkeys(quantized["precision"]))
    stacks = list(dict.fromkeys(quantized["stack"]))
    colours = dict(zip(stacks, seaborn.color_palette(n_colors=max(len(stacks), 1))))
    figure, axes = plt.subplots(1, max(len(corpora), 1), figsize=(1.2 + 1.1 * len(formats) * len(corpora), 3.6),
                                squeeze=False, sharey=True)
    width = 0.8 / max(len(stacks), 1)
    for corpus, ax in zip(corpora, axes[0]):
        for k, stack in enumerate(stacks):
            offset = (k - (len(stacks) - 1) / 2) * width
            rows = quantized[(quantized["corpus"] == corpus) & (quantized["stack"] == stack)]
            x = [formats.index(p) + offset for p in rows["precision"]]
            ax.errorbar(x, rows["vs_full"], yerr=[rows["vs_full"] - rows["vs_full_lo"], rows["vs_full_hi"] - rows["vs_full"]],
                        fmt="o", color=colours[stack], capsize=3, label=stack)
            mine = targets[(targets["stack"] == stack) & ((targets["corpus"] == corpus) | (corpus == "all"))]
            ax.scatter([formats.index(p) + offset + width / 4 for p in mine["precision"]], mine["vs_full"], s=22,
                       color=colours[stack], alpha=0.8, marker="x", linewidths=1)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(margin, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(formats)), formats, rotation=45, ha="right")
        ax.set_title(corpus)
    axes[0, 0].set_ylabel("recovery ratio: change from full precision")
    axes[0, -1].legend(title="unlearned in", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    _save(figure, path)


def _tidy_headline(table: pd.DataFrame) -> pd.DataFrame:
    """recovery.csv or recovery_by_target.csv: the quantized rows, with `precision` and `stack` (the precision
    stack, marked `+SURE` for SURE's rows)."""
    rows = table[table["quantizer"] != "none"]
    return rows.assign(precision=rows["format"].map(precision_label),
                       stack=[f"{p}+SURE" if s else p for p, s in zip(rows["stack"], rows["sure"])])


def forget_across_precisions(summary: pd.DataFrame, path: str | Path) -> None:
    """One panel per corpus × precision stack (rows) and forget metric (columns): each unlearned model as a thin line
    across the precisions (one per target and unlearning seed, method and lr), their mean in bold, the targets'
    mean dashed and the retrain models' dotted (the floor). Knowledge that comes back shows as the bold line rising
    towards the dashed one after quantization."""
    seaborn = _seaborn()
    import matplotlib.pyplot as plt

    tidy = _tidy(summary)
    precisions = list(dict.fromkeys(tidy["precision"]))
    unlearned = tidy[~tidy["model"].isin(list(BASE_STYLES))]
    panels = list(dict.fromkeys(zip(unlearned["corpus"], unlearned["unlearned as"])))
    colours = dict(zip(dict.fromkeys(unlearned["unlearned as"]), seaborn.color_palette()))
    figure, axes = plt.subplots(max(len(panels), 1), len(FORGET_METRICS), figsize=(4.4 * len(FORGET_METRICS),
                                2.6 * max(len(panels), 1)), squeeze=False, sharex=True, sharey="col")
    for (corpus, stack), row in zip(panels, axes):
        for metric, ax in zip(FORGET_METRICS, row):
            here = tidy[tidy["corpus"] == corpus]
            for role, style in BASE_STYLES.items():
                mean = here[here["model"] == role].groupby("precision")[metric].mean().reindex(precisions)
                ax.plot(precisions, mean, linestyle=style, color="black", label=f"{role} (mean)")
            mine = unlearned[(unlearned["corpus"] == corpus) & (unlearned["unlearned as"] == stack)]
            for _, model in mine.groupby(["target_seed", "model"]):
                ax.plot(precisions, model.set_index("precision")[metric].reindex(precisions), color=colours[stack],
                        linewidth=0.7, alpha=0.45)
            ax.plot(precisions, mine.groupby("precision")[metric].mean().reindex(precisions), color=colours[stack],
                    linewidth=2.5, label=f"{stack} (mean)")
            ax.set_title(f"{corpus}, {stack}: {metric}", fontsize=9)
            ax.tick_params(axis="x", rotation=45)
        row[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    _save(figure, path)


def forget_vs_utility(summary: pd.DataFrame, path: str | Path) -> None:
    """KnowMem-forget against KnowMem-retain at each precision: lower left is forgetting without utility loss."""
    grid = _seaborn().relplot(_tidy(summary), x="knowmem_r", y="knowmem_f", hue="unlearned as", style="corpus",
                              col="precision", col_wrap=3, height=3, s=40)
    _save(grid.figure, path)


def recovery_ratios(summary: pd.DataFrame, path: str | Path) -> None:
    """The paper's headline quantity per quantizer and bits: forget metric / the target's at that precision. A bar
    is the mean over the unlearned models of one precision stack (methods, lrs, targets, seeds), its whiskers
    their range: the spread of the grid, not a confidence interval (recovery.csv has those)."""
    tidy = _tidy(unlearned_rows(summary)).melt(id_vars=["corpus", "unlearned as", "precision"],
                                               value_vars=[f"{m}_ratio" for m in FORGET_METRICS],
                                               var_name="metric", value_name="recovery ratio")
    grid = _seaborn().catplot(tidy, x="precision", y="recovery ratio", hue="unlearned as", row="corpus",
                              col="metric", kind="bar", errorbar=("pi", 100), height=3.2, aspect=1.5)
    grid.tick_params(axis="x", rotation=45)
    _save(grid.figure, path)


def surviving_update_against_lr(summary: pd.DataFrame, path: str | Path) -> None:
    """The mechanism, per format (columns): the fraction of the unlearning update that survives quantization (top)
    and the recovery-ratio change from full precision (bottom) against the learning rate, one line per precision
    stack (the mean over its targets and seeds, bars their range; and one per audited model whose entry gives its
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
    _save(grid.figure, path)


def utility_tension(tension: pd.DataFrame, path: str | Path) -> None:
    """The paper's "tension between preserving utility and preventing recovery" (results/tension.csv): per 4-bit
    format (columns), each method × lr × SURE × stack's change of the recovery ratio at that format against the
    share of its target's KnowMem-retain it keeps at full precision, both with their 95% intervals over targets,
    seeds and items; one colour per stack, triangles for SURE. The paper's tension is the points rising to the
    right; a stack whose points stay low on the right escapes it."""
    if tension.empty:
        _save_note("No 4-bit format in this run's grid", path)
        return
    seaborn = _seaborn()
    import matplotlib.pyplot as plt

    formats, stacks = list(dict.fromkeys(tension["format"])), list(dict.fromkeys(tension["stack"]))
    colours = dict(zip(stacks, seaborn.color_palette(n_colors=len(stacks))))
    figure, axes = plt.subplots(1, len(formats), figsize=(4 * len(formats), 3.6), sharey=True, squeeze=False)
    for ax, format_id in zip(axes[0], formats):
        for point in tension[tension["format"] == format_id].itertuples():
            ax.errorbar(point.utility_full, point.change, fmt="^" if point.sure else "o", color=colours[point.stack],
                        xerr=[[point.utility_full - point.utility_full_lo], [point.utility_full_hi - point.utility_full]],
                        yerr=[[point.change - point.change_lo], [point.change_hi - point.change]], capsize=2,
                        label=f"{point.stack}{' SURE' if point.sure else ''}")
            ax.annotate(f"{point.method} {point.lr:g}", (point.utility_full, point.change), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(title=precision_label(format_id), xlabel="KnowMem-retain kept at full precision (share of target's)")
    axes[0][0].set_ylabel("change of the recovery ratio")
    handles = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    _save(figure, path)


def privleak_scores(scores: pd.DataFrame, path: str | Path) -> None:
    """Why PrivLeak moves or stays at −100 (results/mink_scores.csv): per format (columns), the Min-K% scores of
    the forget and holdout texts under the target, the retrain model and each unlearned model (method, lr, stack;
    pooled over targets and seeds). PrivLeak is −100 where the forget texts all score below the holdout texts (more
    likely than text the model never saw), 0 where the two overlap as they do for the retrain model."""
    if scores.empty:
        _save_note("No Min-K% scores in this run", path)
        return
    scores = scores.fillna({"method": "", "stack": ""})
    labelled = scores.assign(model=[name if not method else f"{method} {lr} {stack}" for name, method, lr, stack in
                                    zip(scores["model"], scores["method"], scores["lr"], scores["stack"])],
                             precision=scores["format"].map(precision_label))
    grid = _seaborn().catplot(labelled, x="score", y="model", hue="split", col="precision", col_wrap=3, kind="box",
                              fliersize=1, height=0.35 * labelled["model"].nunique() + 1.5, aspect=1.2)
    grid.set_axis_labels("Min-K% score (higher: less likely)", "")
    _save(grid.figure, path)


def paper_comparison(summary: pd.DataFrame, paper: pd.DataFrame, path: str | Path) -> None:
    """All four MUSE metrics per method and format that both have (rows: the two recovery ratios, the utility ratio,
    PrivLeak), the paper's published MUSE NEWS numbers beside this run's (per corpus and precision stack): whether
    the embedded benchmark shows the paper's shape (a low ratio at full precision, a high one after 4 bits) and how
    far it is from the paper's levels."""
    comparison = compare_with_paper(summary, paper)
    if comparison.empty:
        _save_note("no method and format in common with the paper's table", path)
        return
    tidy = comparison.assign(precision=comparison["precision"].map(precision_label)).melt(
        id_vars=["source", "method", "precision"], value_vars=PAPER_METRICS, var_name="metric")
    seaborn = _seaborn()
    # The legend beside the grid, not in a margin of it: with many sources (stacks, adapters' servings) and one
    # method, seaborn's outside legend needs more width than the figure has and fails.
    grid = seaborn.catplot(tidy, x="precision", y="value", hue="source", col="method", row="metric", kind="bar",
                           height=2.6, aspect=1.2, sharey="row", legend_out=False)
    seaborn.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    grid.set_titles(template="{col_name}: {row_name}")
    grid.set_axis_labels("", "")
    grid.tick_params(axis="x", rotation=30)
    _save(grid.figure, path)


def attack_recovery(attacks: pd.DataFrame, path: str | Path) -> None:
    """Per corpus (rows; `all` where it pools several) and precision stack while unlearning (columns), for each
    attack: the held-out (half B) forget knowledge, as a fraction of the target's, before (open) and after (filled)
    the attack, for the unlearned models and their retrain models; the grey mark is the attacked target. Knowledge
    unlocked shows as the unlearned line rising more than the retrain one."""
    if attacks.empty:
        _save_note("no attacks in this run (config: attacks)", path)
        return
    _seaborn()  # the Agg backend before pyplot
    import matplotlib.pyplot as plt

    rows = without_lone_pool(attacks)
    rows = rows.assign(stack=[f"{p}+SURE" if s else p for p, s in zip(rows["stack"], rows["sure"])])
    corpora, stacks = list(dict.fromkeys(rows["corpus"])), list(dict.fromkeys(rows["stack"]))
    names = list(dict.fromkeys(rows["attack"]))
    figure, axes = plt.subplots(len(corpora), len(stacks), figsize=(1.4 + 1.3 * len(names) * len(stacks),
                                2.8 * len(corpora)), squeeze=False, sharex=True, sharey=True)
    for (corpus, stack), ax in zip([(c, s) for c in corpora for s in stacks], axes.flat):
        here = rows[(rows["corpus"] == corpus) & (rows["stack"] == stack)].set_index("attack").reindex(names)
        x = np.arange(len(names))
        for role, offset, colour in (("unlearned", -0.12, "tab:red"), ("retrain", 0.12, "tab:blue")):
            before, after = here[f"{role}_before"], here[f"{role}_after"]
            ax.vlines(x + offset, before, after, color=colour, linewidth=1.5)
            ax.scatter(x + offset, before, facecolors="none", edgecolors=colour, label=f"{role}: before")
            ax.scatter(x + offset, after, color=colour, label=f"{role}: after")
        ax.scatter(x, here["target_after"], marker="_", s=200, color="grey", label="target: after")
        ax.axhline(1, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{corpus}, {stack}", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("held-out knowledge / target's")
    for ax in axes.flat:
        ax.label_outer()  # attack names under the last row only
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    _save(figure, path)


def draw_all(summary: pd.DataFrame, recovery: pd.DataFrame, by_target: pd.DataFrame, paper: pd.DataFrame,
             attacks: pd.DataFrame, tension: pd.DataFrame, mink: pd.DataFrame, paths: dict[str, str],
             margin: float) -> None:
    """Every figure of registry.FIGURES, each to its path, from the inputs its spec names; `summary` is the summary's
    quantized and full-precision rows (attacked rows have their own figure, from results/attacks.csv)."""
    inputs = {"summary": unattacked(summary), "recovery": recovery, "by_target": by_target, "paper": paper,
              "attacks": attacks, "tension": tension, "mink": mink, "margin": margin}
    for name, figure in FIGURES.items():
        resolve(figure.impl)(*(inputs[key] for key in figure.inputs), paths[name])


def width_ladder(table: pd.DataFrame, fits: pd.DataFrame, paper_change: float | None, path: str | Path) -> None:
    """The width ladder (widths.csv): per measure (rows) and format (columns), each stack's value against parameter
    count (log), with its 95% interval; open markers for widths whose targets miss the calibration rule (left out of
    the fit); the fit over the calibrated widths, dashed, extended to Llama-2-7B's size with its interval there (which
    may run off the panel: each row's range is the measured widths' and the paper's);
    and the paper's change at FP4 for the ladder's methods (ratio view; widths.paper_point) as a star."""
    from qunlearn.analysis.widths import MEASURES
    from qunlearn.config.widths import PAPER_PARAMETERS

    seaborn = _seaborn()
    import matplotlib.pyplot as plt

    if table.empty:
        _save_note("no width ladder: model.widths is empty", path)
        return
    corpus = table["corpus"].iloc[0]  # the first corpus alone (widths.csv has every one)
    table, fits = table[table["corpus"] == corpus], fits[fits["corpus"] == corpus]
    measures = [m for m in MEASURES if m in table and table[m].notna().any()]
    formats = list(dict.fromkeys(table["format"]))
    colours = dict(zip(dict.fromkeys(table["stack"]), seaborn.color_palette()))
    figure, axes = plt.subplots(len(measures), len(formats), figsize=(3.6 * len(formats), 2.8 * len(measures)),
                                squeeze=False, sharex=True, sharey="row")
    for measure, row in zip(measures, axes):
        for format_id, ax in zip(formats, row):
            for stack, points in table[table["format"] == format_id].groupby("stack", sort=False):
                _ladder_points(ax, points, measure, colours[stack], stack)
                line = fits[(fits["stack"] == stack) & (fits["format"] == format_id) & (fits["measure"] == measure)]
                for result in line.to_dict("records"):
                    xs = np.array([points["parameters"].min(), PAPER_PARAMETERS])
                    intercept = result["at_paper"] - result["slope"] * np.log10(PAPER_PARAMETERS)
                    ax.plot(xs, intercept + result["slope"] * np.log10(xs), linestyle="--", color=colours[stack],
                            linewidth=1)
                    ax.errorbar([PAPER_PARAMETERS], [result["at_paper"]], color=colours[stack], capsize=3, fmt="s",
                                markerfacecolor="none", yerr=[[result["at_paper"] - result["at_paper_lo"]],
                                                              [result["at_paper_hi"] - result["at_paper"]]])
            if measure == "vs_full" and format_id == "bnb-fp4-w4" and paper_change is not None:
                ax.plot([PAPER_PARAMETERS], [paper_change], marker="*", markersize=12, color="black", linestyle="",
                        label="the paper (Llama-2-7B, the same methods)")
            ax.axhline(0, color="grey", linewidth=0.6)
            ax.set_xscale("log")
            ax.set_xlim(table["parameters"].min() / 2, PAPER_PARAMETERS * 2)  # the ladder and where the paper is
            ax.set_title(f"{precision_label(format_id)}: {MEASURES[measure]}", fontsize=8)
        row[0].set_ylim(*_measured_range(table, measure, paper_change if measure == "vs_full" else None))
    for ax in axes[-1]:  # the x axis is shared: a label on every row ran into the titles of the row below
        ax.set_xlabel("parameters")
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    axes[0, -1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    _save(figure, path)


def _measured_range(table: pd.DataFrame, measure: str, paper_change: float | None) -> tuple[float, float]:
    """A row's y range: the measured widths' intervals, 0 and the paper's point, padded; an extrapolation's wider
    interval runs off the panel rather than flatten the measured points."""
    bounds = [table[f"{measure}_{end}"] if f"{measure}_{end}" in table else table[measure] for end in ("lo", "hi")]
    values = np.concatenate([np.asarray(b, float) for b in bounds] + [[0.0], [] if paper_change is None else [paper_change]])
    low, high = np.nanmin(values), np.nanmax(values)
    pad = 0.15 * (high - low or 1.0)
    return low - pad, high + pad


def _ladder_points(ax, points: pd.DataFrame, measure: str, colour, stack: str) -> None:
    """One stack's widths: filled where calibrated, open where not, with the interval where the measure has one."""
    for calibrated, part in points.groupby("calibrated"):
        low, high = (part[f"{measure}_lo"], part[f"{measure}_hi"]) if f"{measure}_lo" in part else (part[measure],) * 2
        ax.errorbar(part["parameters"], part[measure], yerr=[part[measure] - low, high - part[measure]], fmt="o",
                    color=colour, capsize=3, markerfacecolor=colour if calibrated else "none",
                    label=stack if calibrated else f"{stack} (uncalibrated)")
