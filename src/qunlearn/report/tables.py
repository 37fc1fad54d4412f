"""The paper's tables in LaTeX (booktabs): the four MUSE metrics per model × precision, the recovery verdicts over
targets, the contrast between precision stacks, and this run beside the paper's published numbers."""

import pandas as pd

from qunlearn.analysis.summary import FORGET_METRICS, unlearned_rows
from qunlearn.config.naming import format_lr

LABELS = {"verbmem_f": r"VerbMem-f $\downarrow$", "knowmem_f": r"KnowMem-f $\downarrow$",
          "privleak": r"PrivLeak $\rightarrow 0$", "knowmem_r": r"KnowMem-r $\uparrow$",
          "verbmem_f_ratio": "VerbMem-f", "knowmem_f_ratio": "KnowMem-f"}
ORDER = ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")  # the paper's column order
BOLD = "textbf:--rwrap;"


def precision_label(format_id: str) -> str:
    """A format as tables and figures name it, from its id (the summary's `format`): full, RTN 4-bit g64,
    BNB-FP4 4-bit."""
    if format_id == "full":
        return "full"
    name, rest = format_id.rsplit("-w", 1)
    bits, _, group = rest.partition("g")
    return f"{name.upper()} {bits}-bit" + (f" g{group}" if group else "")


def model_label(model: str, audited: bool, method: str, lr, stack: str, seed, target_seed) -> str:
    """`Target t0`, `NPO-GDR (3e-05, bf16, t0, seed 0)`, `my-npo (audited, t0, ...)`: t<n> is the target seed."""
    target = f"t{int(target_seed)}"
    if model in ("target", "retrain"):
        return f"{model.capitalize()} {target}"
    if audited:  # as labelled in the config, with what its entry says
        said = [target, method.upper().replace("_", "-"), "" if pd.isna(lr) or lr == "" else format_lr(lr),
                stack]
        return f"{model} (audited{''.join(', ' + s for s in said if s)})"
    return f"{method.upper().replace('_', '-')} ({format_lr(lr)}, {stack}, {target}, seed {int(seed)})"


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    columns = ["model", "audited", "method", "lr", "stack", "seed", "target_seed"]
    return summary.assign(
        Model=[model_label(*values) for values in zip(*(summary[c] for c in columns))],
        Precision=summary["format"].map(precision_label),
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
    unlearned = pd.Series([not m.startswith(("Target ", "Retrain ")) for m, _ in wide.index])
    styler = _cells(wide, half_widths).style
    for (corpus, label), metric in zip(wide.columns, [m for _ in labelled["corpus"].unique() for m in ORDER]):
        bold = _best(wide[(corpus, label)], metric, unlearned)
        styler = styler.apply(lambda _, bold=bold: bold, subset=[(corpus, label)])
    return styler.to_latex(hrules=True, multicol_align="c", clines=None)


def _change(value: float, low: float, high: float, verdict: str) -> str:
    """`+0.13 [+0.03, +0.24] recovered`."""
    if pd.isna(low):
        return f"{value:+.2f}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}] {verdict}"


def recovery_table(recovery: pd.DataFrame) -> str:
    """The headline from results/recovery.csv: per corpus, precision stack and SURE (rows) and format (columns),
    the change of the mean recovery ratio from full precision with its interval over targets, seeds and items,
    the verdict, and how many targets reach it on their own; the ratio at full precision in its own column."""
    recovery = recovery.assign(SURE=recovery["sure"].map({True: "SURE", False: "--"}),
                               Precision=recovery["format"].map(precision_label))
    full = recovery[recovery["quantizer"] == "none"].set_index(["corpus", "stack", "SURE"])
    quantized = recovery[recovery["quantizer"] != "none"]
    cells = quantized.assign(cell=[
        f"{_change(v, lo, hi, verdict)} ({agree}/{targets})"
        for v, lo, hi, verdict, agree, targets in zip(quantized["vs_full"], quantized["vs_full_lo"],
                                                      quantized["vs_full_hi"], quantized["verdict"],
                                                      quantized["targets_agree"].astype(int), quantized["targets"])])
    wide = cells.pivot_table(index=["corpus", "stack", "SURE"], columns="Precision", values="cell",
                             aggfunc="first", sort=False)
    wide.insert(0, "full (ratio)", full["mean_recovery_ratio"].reindex(wide.index).map("{:.2f}".format))
    return ("% Change of the mean recovery ratio from full precision (utility-constrained methods), 95% interval over\n"
            "% targets, unlearning seeds and items, verdict, (targets reaching it on their own / targets)\n"
            + wide.style.to_latex(hrules=True))


def per_model_ratios_table(summary: pd.DataFrame) -> str:
    """Recovery ratios metric(unlearned, p) / metric(target, p) per model × precision."""
    labelled = _labelled(unlearned_rows(summary))
    wide = _wide(labelled, [f"{m}_ratio" for m in FORGET_METRICS])
    return wide.style.format("{:.2f}", na_rep="--").to_latex(hrules=True, multicol_align="c", clines=None)


def contrast_table(contrast: pd.DataFrame) -> str:
    """Per corpus, stack and baseline (rows) and format (columns): the stack's recovery minus the baseline's, with
    its interval over targets, seeds and items, and how many targets show the stack above the baseline."""
    if contrast.empty:
        return "% No contrast: the grid has no fp32 or mixed stack to compare with\n"
    cells = contrast.assign(
        Precision=contrast["format"].map(precision_label),
        comparison=[f"{s} $-$ {r}" for s, r in zip(contrast["stack"], contrast["baseline"])],
        cell=[f"{_change(v, lo, hi, verdict)} ({above}/{targets})" for v, lo, hi, verdict, above, targets in zip(
            contrast["contrast"], contrast["contrast_lo"], contrast["contrast_hi"], contrast["verdict"],
            contrast["targets_above"], contrast["targets"])])
    return _cell_table(cells, ["corpus", "comparison", "sure"], "Precision",
                       "% A stack's change of the recovery ratio minus the baseline's, paired by method, lr, target and "
                       "seed;\n% 95% interval; (targets where the stack is above the baseline / targets)\n")


def read_paper(path) -> pd.DataFrame:
    """resources/paper_muse_news.csv: the paper's published rows (its header lines say where they come from)."""
    return pd.read_csv(path, comment="#", dtype={"method": str}, keep_default_na=False)


PAPER_METRICS = ["verbmem_f_ratio", "knowmem_f_ratio", "utility", "privleak"]  # the comparison's four columns


def paper_comparison(summary: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per method and format that both the paper and this run have, all four MUSE metrics as both can be compared
    across scales: the forget metrics' recovery ratios and `utility` (KnowMem-retain), each over the target's at that
    format, and PrivLeak; the paper's published rows beside this run's mean over targets, seeds and learning rates
    per corpus and precision stack. One row per source; `mean_ratio` is the mean over the two recovery ratios.
    Where the paper's table has no target row at a format (its 8-bit), its ratios divide by the target at full
    precision."""
    target = paper[paper["model"] == "target"].set_index("precision")
    published = paper[paper["method"] != ""].reset_index(drop=True)
    reference = target.reindex(published["precision"]).fillna(target.loc["full"]).reset_index(drop=True)
    published = published.assign(source="paper: MUSE NEWS, Llama-2-7B, bf16",
                                 **{f"{m}_ratio": published[m] / reference[m] for m in FORGET_METRICS},
                                 utility=published["knowmem_r"] / reference["knowmem_r"])
    rows = unlearned_rows(summary)
    rows = rows[~rows["audited"]].rename(columns={"format": "precision"})
    rows = rows.merge(published[["method", "precision"]], on=["method", "precision"])
    run = rows.groupby(["corpus", "stack", "method", "precision"], sort=False)[PAPER_METRICS].mean().reset_index()
    run = run.assign(source=[f"this run: {c}, {p}" for c, p in zip(run["corpus"], run["stack"])])
    columns = ["source", "method", "precision", *PAPER_METRICS]
    both = pd.concat([published[columns], run[columns]], ignore_index=True)
    both = both[both["method"].isin(run["method"]) & both["precision"].isin(run["precision"])]
    return both.assign(mean_ratio=both[[f"{m}_ratio" for m in FORGET_METRICS]].mean(axis=1)).reset_index(drop=True)


def paper_table(comparison: pd.DataFrame) -> str:
    """Rows: method × source (the paper, this run per corpus and stack); columns: format; cells: the mean recovery
    ratio (VerbMem-f / KnowMem-f in parentheses), the utility ratio and PrivLeak."""
    if comparison.empty:
        return "% No method and format in common with the paper's table\n"
    cells = comparison.assign(cell=[f"{m:.2f} ({v:.2f} / {k:.2f}); {u:.2f}; {p:+.1f}" for m, v, k, u, p in zip(
        comparison["mean_ratio"], comparison["verbmem_f_ratio"], comparison["knowmem_f_ratio"],
        comparison["utility"], comparison["privleak"])])
    return _cell_table(cells, ["method", "source"], "precision",
                       "% Recovery ratio (forget metric / the target's at the same format), mean (VerbMem-f / "
                       "KnowMem-f);\n% KnowMem-retain / the target's; PrivLeak: the paper's published MUSE NEWS "
                       "numbers beside this run's\n")


def attacks_table(attacks: pd.DataFrame) -> str:
    """Per corpus, precision stack and SURE (rows) and attack (columns): the unlearned models' change of held-out
    knowledge minus the retrain models', with its interval and verdict, and both parts."""
    if attacks.empty:
        return "% No attacks: the config's `attacks` is empty\n"
    cells = attacks.assign(
        SURE=attacks["sure"].map({True: "SURE", False: "--"}),
        cell=[f"{_change(v, lo, hi, verdict)} (unlearned {u:+.2f}, retrain {r:+.2f})" for v, lo, hi, verdict, u, r in zip(
            attacks["change"], attacks["change_lo"], attacks["change_hi"], attacks["verdict"],
            attacks["unlearned_change"], attacks["retrain_change"])])
    return _cell_table(cells, ["corpus", "stack", "SURE"], "attack",
                       "% Change of held-out (half B) forget knowledge, as a fraction of the target's, from before the "
                       "attack to\n% after it: unlearned models minus the retrain model of the same target; 95% "
                       "interval over targets,\n% unlearning seeds and B's items; verdict; (each part)\n")


def claims_table(claims: pd.DataFrame) -> str:
    """results/claims.csv: per claim, method and format (rows, with the paper's figure) and precision stack
    (columns), qunlearn's estimate with its interval, the verdict and the targets that point the claim's way."""
    if claims.empty:
        return "% No claim of the paper can be tested on this grid (docs/claims.md says what each needs)\n"
    claims = claims.fillna({"paper": ""})
    cells = claims.assign(
        Claim=claims["claim"].str.replace("_", " "), Method=claims["method"].str.upper().str.replace("_", "-"),
        Format=claims["format"].map(precision_label), Paper=claims["paper"],
        cell=[f"{_change(v, lo, hi, verdict)} ({k}/{n})" for v, lo, hi, verdict, k, n in zip(
            claims["estimate"], claims["low"], claims["high"], claims["verdict"], claims["targets_supporting"],
            claims["targets"])])
    return _cell_table(cells, ["Claim", "Method", "Format", "Paper"], "stack",
                       "% The paper's claims (docs/claims.md): qunlearn's estimate, 95% interval over targets, seeds "
                       "and items,\n% verdict (reproduced / not reproduced / unclear), (targets pointing the claim's "
                       "way / targets)\n")


def _cell_table(cells: pd.DataFrame, index: list[str], columns: str, header: str) -> str:
    """The `cell` column laid out by rows and columns, as LaTeX under its header comment."""
    wide = cells.pivot_table(index=index, columns=columns, values="cell", aggfunc="first", sort=False)
    return header + wide.style.to_latex(hrules=True)


def widths_table(ladder: pd.DataFrame) -> str:
    """The width ladder (widths.csv): per corpus, stack and width (rows) and format (columns), the change of the
    recovery ratio from full precision with its interval, verdict and targets agreeing; the surviving update; and
    the stack's change minus fp32's. Uncalibrated widths are marked."""
    if ladder.empty:
        return "% No width ladder: model.widths is empty\n"
    ladder = ladder.assign(
        Precision=ladder["format"].map(precision_label),
        width=[f"{w:g}" + ("" if c else " (uncalibrated)") for w, c in zip(ladder["width"], ladder["calibrated"])],
        change=[f"{_change(v, lo, hi, verdict)} ({agree}/{targets})" if pd.notna(v) else "undefined"
                for v, lo, hi, verdict, agree, targets in zip(
            ladder["vs_full"], ladder["vs_full_lo"], ladder["vs_full_hi"], ladder["verdict"],
            ladder["targets_agree"].astype(int), ladder["targets"])],
        surviving=ladder.get("surviving_update", pd.Series(float("nan"), index=ladder.index)).map(
            lambda v: "--" if pd.isna(v) else f"{v:.2f}"),
        contrast=[_change(v, lo, hi, verdict) if pd.notna(v) else "--" for v, lo, hi, verdict in zip(
            ladder["minus_fp32"], ladder["minus_fp32_lo"], ladder["minus_fp32_hi"], ladder["contrast_verdict"])])
    parts = [("change", "% Change of the mean recovery ratio from full precision, 95% interval, verdict, "
                        "(targets agreeing / targets)\n"),
             ("surviving", "% Share of the unlearning update the format keeps (mean over models)\n"),
             ("contrast", "% The stack's change minus fp32's (paired by target and seed), 95% interval\n")]
    return "".join(_cell_table(ladder.assign(cell=ladder[value]), ["corpus", "stack", "width"], "Precision", header)
                   for value, header in parts)
