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


def model_label(model: str, method: str, lr) -> str:
    if model in ("target", "retrain"):
        return model.capitalize()
    return f"{method.upper().replace('_', '-')} ({float(lr):.0e})"


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.assign(
        Model=[model_label(m, me, lr) for m, me, lr in zip(summary["model"], summary["method"], summary["lr"])],
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


def main_table(summary: pd.DataFrame) -> str:
    """Rows: model × precision; columns: the four metrics for each corpus; the best unlearned value in bold."""
    labelled = _labelled(summary)
    wide = _wide(labelled, ORDER)
    unlearned = pd.Series([m not in ("Target", "Retrain") for m, _ in wide.index])
    styler = wide.style.format("{:.1f}", na_rep="--")
    for (corpus, label), metric in zip(wide.columns, [m for _ in labelled["corpus"].unique() for m in ORDER]):
        styler = styler.apply(lambda col, metric=metric: _best(col, metric, unlearned), subset=[(corpus, label)])
    return styler.to_latex(hrules=True, multicol_align="c", clines=None)


def recovery_table(summary: pd.DataFrame) -> str:
    """Recovery ratios metric(unlearned, p) / metric(target, p) per method × precision, and the headline means."""
    labelled = _labelled(unlearned_rows(summary))
    ratios = [f"{m}_ratio" for m in FORGET_METRICS]
    wide = _wide(labelled, ratios)
    per_method = wide.style.format("{:.2f}", na_rep="--").to_latex(hrules=True, multicol_align="c",
                                                                   clines=None)
    means = headline(summary).assign(Precision=lambda t: [precision_label(q, b) for q, b in zip(t["quantizer"], t["bits"])])
    means = means.pivot_table(index="Precision", columns="sure", values="mean_recovery_ratio", sort=False, dropna=False)
    means.columns = ["SURE" if sure else "without SURE" for sure in means.columns]
    headline_tex = means.style.format("{:.2f}", na_rep="--").to_latex(hrules=True)
    return f"% Mean over the utility-constrained methods, corpora, lrs and both forget metrics\n{headline_tex}\n" \
           f"% Per method\n{per_method}"

