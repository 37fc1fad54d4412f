"""The width ladder's answer (model.widths, docs/calibration.md): per width, whether its targets meet the calibration
rule, the recovery change of both views with its interval, the share of the unlearning update each format keeps, and
bf16 minus fp32; and a fit of each against log parameter count, extrapolated to Llama-2-7B's width."""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from qunlearn.analysis.summary import TARGET_KEYS, headline_rows, unattacked
from qunlearn.config.widths import PAPER_PARAMETERS

# The calibration rule for every width (docs/calibration.md, "Widths"), on full-precision metrics only: each target
# knows its forget set at least this many points above its retrain model, and keeps the retain knowledge within
# RETAIN_DROP points below it.
KNOWMEM_MARGIN, VERBMEM_MARGIN, RETAIN_DROP = 15.0, 8.0, 10.0
CALIBRATION_COLUMNS = [*TARGET_KEYS, "width", "target_verbmem_f", "retrain_verbmem_f", "target_knowmem_f",
                       "retrain_knowmem_f", "target_knowmem_r", "retrain_knowmem_r", "verbmem_margin",
                       "knowmem_margin", "retain_gap", "meets_rule"]
# The measures the ladder reads per width × stack × format, each with its interval columns where it has one.
MEASURES = {"vs_full": "recovery change (ratio view)", "excess_vs_full": "recovery change (excess view)",
            "surviving_update": "surviving update", "minus_fp32": "the stack's change minus fp32's"}


def target_calibration(summary: pd.DataFrame) -> pd.DataFrame:
    """Per target (corpus, rung, seed) with its width: its own and its retrain model's full-precision metrics, the
    margins the rule reads, and whether it meets the rule."""
    full = unattacked(summary)
    full = full[full["quantizer"] == "none"]
    pairs = full[full["model"] == "target"].merge(full[full["model"] == "retrain"], on=[*TARGET_KEYS, "width"],
                                                  suffixes=("_t", "_r"))
    rows = pd.DataFrame({**{k: pairs[k] for k in (*TARGET_KEYS, "width")},
                         **{f"{role}_{m}": pairs[f"{m}_{s}"] for role, s in (("target", "t"), ("retrain", "r"))
                            for m in ("verbmem_f", "knowmem_f", "knowmem_r")}})
    rows["verbmem_margin"] = rows["target_verbmem_f"] - rows["retrain_verbmem_f"]
    rows["knowmem_margin"] = rows["target_knowmem_f"] - rows["retrain_knowmem_f"]
    rows["retain_gap"] = rows["target_knowmem_r"] - rows["retrain_knowmem_r"]
    rows["meets_rule"] = ((rows["knowmem_margin"] >= KNOWMEM_MARGIN) & (rows["verbmem_margin"] >= VERBMEM_MARGIN)
                          & (rows["retain_gap"] >= -RETAIN_DROP))
    return rows[CALIBRATION_COLUMNS].sort_values(TARGET_KEYS, ignore_index=True)


def calibrated(calibration: pd.DataFrame) -> pd.DataFrame:
    """Per corpus and rung (with its width): whether every target meets the rule (the width enters the fit only
    then)."""
    return calibration.groupby(["corpus", "rung", "width"], as_index=False).agg(
        calibrated=("meets_rule", "all"), targets=("meets_rule", "size"))


def ladder_table(summary: pd.DataFrame, recovery: pd.DataFrame, contrast: pd.DataFrame,
                 parameters: dict[int, int]) -> pd.DataFrame:
    """Per corpus, width, stack and quantized format (utility-constrained methods without SURE, as the headline;
    each corpus alone, not pooled): the parameter count, whether the width is calibrated, both views' change from
    full precision with intervals and verdicts, the mean surviving update and moved fraction, and (for stacks with
    an fp32-master baseline) the stack's change minus fp32's with its interval. `parameters` maps each width of the
    embedded models to its parameter count (config.widths.ladder_parameters); other widths get none."""
    changes = recovery[(recovery["corpus"] != "all") & (recovery["quantizer"] != "none")
                       & ~recovery["sure"].astype(bool)]
    keys = ["corpus", "rung", "stack", "format"]
    table = changes[[*keys, "quantizer", "bits", "targets", "vs_full", "vs_full_lo", "vs_full_hi", "verdict",
                     "excess_vs_full", "excess_vs_full_lo", "excess_vs_full_hi", "excess_verdict", "targets_agree"]]
    rows = headline_rows(summary)
    rows = rows[(rows["quantizer"] != "none") & ~rows["sure"]]
    mechanism = [c for c in ("surviving_update", "moved") if c in rows]
    if mechanism:
        table = table.merge(rows.groupby(keys, as_index=False)[mechanism].mean(), on=keys, how="left")
    fp32 = contrast[(contrast["baseline"] == "fp32") & ~contrast["sure"].astype(bool)].rename(columns={
        "contrast": "minus_fp32", "contrast_lo": "minus_fp32_lo", "contrast_hi": "minus_fp32_hi",
        "verdict": "contrast_verdict", "targets_above": "contrast_targets_above"})
    table = table.merge(fp32[[*keys, "minus_fp32", "minus_fp32_lo", "minus_fp32_hi",
                              "contrast_verdict", "contrast_targets_above"]], on=keys, how="left")
    table = table.merge(calibrated(target_calibration(summary)).drop(columns="targets"), on=["corpus", "rung"],
                        how="left")
    table["calibrated"] = table["calibrated"].fillna(False).astype(bool)  # no target and retrain rows: unread
    table["parameters"] = table["width"].map(parameters)
    first = ["corpus", "width", "parameters"]
    return table[[*first, *(c for c in table if c not in first)]].sort_values(["corpus", "stack", "format", "width"],
                                                                             ignore_index=True)


def paper_point(paper_changes: dict[str, float], summary: pd.DataFrame) -> float | None:
    """The paper's change at 4 bits (FP4) beside the ladder: the mean over the ladder's methods (without SURE) that
    the paper's table has (claims.paper_changes); None where it has none of them."""
    rows = headline_rows(summary)
    mine = [paper_changes[m] for m in sorted(set(rows.loc[~rows["sure"], "method"])) if m in paper_changes]
    return float(np.mean(mine)) if mine else None


@dataclass
class Fit:
    """measure = intercept + slope · log10(parameters), by least squares over the calibrated widths."""
    points: int
    slope: float  # per tenfold parameters
    slope_lo: float
    slope_hi: float
    at_paper: float  # the fitted mean at PAPER_PARAMETERS
    at_paper_lo: float  # its 95% confidence interval (t with points − 2 degrees of freedom)
    at_paper_hi: float
    trend: str  # "rises" / "falls": the slope's interval excludes 0; "none": it does not


def fit(parameters: np.ndarray, values: np.ndarray, at: float = PAPER_PARAMETERS) -> Fit | None:
    """The line through (log10 parameters, value), with the slope's and the extrapolated mean's 95% intervals; None
    with fewer than three points (no interval is left)."""
    x, y = np.log10(np.asarray(parameters, float)), np.asarray(values, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return None
    line = stats.linregress(x, y)
    t = stats.t.ppf(0.975, len(x) - 2)
    residual = np.sqrt(np.sum((y - line.intercept - line.slope * x) ** 2) / (len(x) - 2))
    x0 = np.log10(at)
    mean_se = residual * np.sqrt(1 / len(x) + (x0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    at_paper = line.intercept + line.slope * x0
    low, high = line.slope - t * line.stderr, line.slope + t * line.stderr
    return Fit(len(x), float(line.slope), float(low), float(high), float(at_paper), float(at_paper - t * mean_se),
               float(at_paper + t * mean_se), "rises" if low > 0 else "falls" if high < 0 else "none")


FIT_COLUMNS = ["corpus", "stack", "format", "measure", *Fit.__dataclass_fields__]


def ladder_fits(table: pd.DataFrame) -> pd.DataFrame:
    """A fit per corpus, stack, format and measure, over the calibrated widths (none where fewer than three are)."""
    found = []
    for (corpus, stack, format_id), group in table[table["calibrated"]].groupby(
            ["corpus", "stack", "format"], sort=False):
        for measure in MEASURES:
            result = fit(group["parameters"], group[measure]) if measure in group else None
            if result is not None:
                found.append({"corpus": corpus, "stack": stack, "format": format_id, "measure": measure,
                              **asdict(result)})
    return pd.DataFrame(found, columns=FIT_COLUMNS)
