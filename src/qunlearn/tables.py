"""The paper's tables in LaTeX (booktabs): the four MUSE metrics per method × precision, and recovery ratios."""

import pandas as pd

from .summary import FORGET_METRICS, headline, unlearned_rows

LABELS = {"verbmem_f": r"VerbMem-f $\downarrow$", "knowmem_f": r"KnowMem-f $\downarrow$",
          "privleak": r"PrivLeak $\rightarrow 0$", "knowmem_r": r"KnowMem-r $\uparrow$",
          "verbmem_f_ratio": "VerbMem-f", "knowmem_f_ratio": "KnowMem-f"}
ORDER = ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")  # the paper's column order
BOLD = "textbf:--rwrap;"


def precision_label(quantizer: str, bits: int) -> str:
    return "full" if quantizer == "none" else f"{quantizer.upper()} {bits}-bit"


def model_label(model: str, audited: bool, method: str, lr, unlearn_precision: str, seed) -> str:
    if model in ("target", "retrain"):
        return model.capitalize()
    if audited:  # as labelled in the config, with what its entry says
        said = [method.upper().replace("_", "-"), "" if pd.isna(lr) or lr == "" else f"{float(lr):.0e}", unlearn_precision]
        return f"{model} (audited{''.join(', ' + s for s in said if s)})"
    return f"{method.upper().replace('_', '-')} ({float(lr):.0e}, {unlearn_precision}, seed {int(seed)})"


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    columns = ["model", "audited", "method", "lr", "unlearn_precision", "seed"]
    return summary.assign(
        Model=[model_label(*values) for values in zip(*(summary[c] for c in columns))],
        Precision=[precision_label(q, b) for q, b in zip(summary["quantizer"], summary["bits"])],
    )


def _wide(labelled: pd.DataFrame, metrics) -> pd.DataFrame:
    """Rows model × precision, columns corpus × metric (labelled), in the corpora's and metrics' order."""
    wide = labelled.pivot_table(index=["Model", "Precision"], columns="corpus", values=list(metrics), sort=False,
                                dropna=False).dropna(how="all")
    wide = wide.swaplevel(axis=1)[[(c, m) for c in labelled["corpus"].unique() for m in metrics]]
    wide.columns = pd.MultiIndex.from_tuples([(c, LABELS[m]) for c, m in wide.columns])
    return wide


def _best(column: pd.Series, metric: str, unlearned: pd.Series) -> list[str]:
    """Bold the best unlearned value of a column: lowest forget metrics, PrivLeak nearest 0, highest utility."""
    score = column.abs() if metric == "privleak" else -column if metric == "knowmem_r" else column
    best = score[unlearned.to_numpy()].min()
    return [BOLD if is_unlearned and value == best else "" for is_unlearned, value in zip(unlearned, score)]


def _cells(wide: pd.DataFrame, half_widths: pd.DataFrame) -> pd.DataFrame:
    """Each value as text, `33.4 ± 2.1` where it has a bootstrap interval (half its width)."""
    def cell(value, half) -> str:
        if pd.isna(value):
            return "--"
        return f"{value:.1f}" if pd.isna(half) else f"{value:.1f} $\\pm$ {half:.1f}"

    return wide.combine(half_widths.reindex_like(wide), lambda values, halves: pd.Series(
        [cell(v, h) for v, h in zip(values, halves)], index=values.index))


def main_table(summary: pd.DataFrame) -> str:
    """Rows: model × precision; columns: the four metrics for each corpus, with ± half the 95% bootstrap
    interval where there is one; the best unlearned value in bold."""
    labelled = _labelled(summary)
    wide = _wide(labelled, ORDER)
    halves = {m: (labelled[f"{m}_hi"] - labelled[f"{m}_lo"]) / 2 if f"{m}_lo" in labelled else float("nan")
              for m in ORDER}
    half_widths = _wide(labelled.assign(**halves), ORDER)
    unlearned = pd.Series([m not in ("Target", "Retrain") for m, _ in wide.index])
    styler = _cells(wide, half_widths).style
    for (corpus, label), metric in zip(wide.columns, [m for _ in labelled["corpus"].unique() for m in ORDER]):
        bold = _best(wide[(corpus, label)], metric, unlearned)
        styler = styler.apply(lambda _, bold=bold: bold, subset=[(corpus, label)])
    return styler.to_latex(hrules=True, multicol_align="c", clines=None)


def recovery_table(summary: pd.DataFrame) -> str:
    """Recovery ratios metric(unlearned, p) / metric(target, p) per method × precision, and the headline means."""
    labelled = _labelled(unlearned_rows(summary))
    ratios = [f"{m}_ratio" for m in FORGET_METRICS]
    wide = _wide(labelled, ratios)
    per_method = wide.style.format("{:.2f}", na_rep="--").to_latex(hrules=True, multicol_align="c",
                                                                   clines=None)
    means = headline(summary).assign(Precision=lambda t: [precision_label(q, b) for q, b in zip(t["quantizer"], t["bits"])],
                                      SURE=lambda t: t["sure"].map({True: "SURE", False: "--"}))
    means = means.pivot_table(index=["corpus", "unlearn_precision", "SURE"], columns="Precision",
                              values="mean_recovery_ratio", sort=False, dropna=False)
    headline_tex = means.style.format("{:.2f}", na_rep="--").to_latex(hrules=True)
    return f"% Mean over the utility-constrained methods, lrs, seeds and both forget metrics\n{headline_tex}\n" \
           f"% Per method\n{per_method}"
