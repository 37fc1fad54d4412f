"""The paper's claims, each tested on the summary by a rule written before the run (docs/claims.md): one row per
claim × precision stack × format × method (`pooled`: every method the claim names), with the paper's figure,
qunlearn's estimate and its 95% interval over targets, unlearning seeds and items, and a verdict:
`reproduced`, `not reproduced` or `unclear`. A claim is one `Claim`: which rows it reads, what it estimates, and
how the estimate's interval decides it."""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from qunlearn.analysis import bootstrap, verdicts
from qunlearn.analysis.summary import FORGET_METRICS, ROW_KEYS, Change, group_rng, nested_change, pooled
from qunlearn.registry import methods

# The share of its target's KnowMem-retain that a model must lose for the "collapse" claim (GA and NPO without a
# retain term): at least half, the interval deciding.
COLLAPSE = 0.5
CLAIM_COLUMNS = ["claim", "stack", "format", "bits", "method", "lr", "paper", "estimate", "low", "high", "verdict",
                 "targets", "targets_supporting", "threshold_lr", "predicted_threshold_lr"]
POOLED = "pooled"


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    # (estimate, low, high, margin) -> reproduced / not reproduced / unclear
    decide: Callable[[float, float, float, float], str]
    supports: Callable[[float, float], bool]  # (one target's estimate, margin) -> does it point the claim's way


def _recovers(estimate, low, high, margin) -> str:
    return {"recovered": "reproduced", "kept": "not reproduced"}.get(verdicts.verdict(estimate, low, high, margin),
                                                                     "unclear")


def _keeps(estimate, low, high, margin) -> str:
    return {"kept": "reproduced", "recovered": "not reproduced"}.get(verdicts.verdict(estimate, low, high, margin),
                                                                     "unclear")


def _same(estimate, low, high, margin) -> str:
    """Within ±margin: reproduced; the whole interval beyond it: not; else unclear."""
    if verdicts.direction(low, high, margin) == "same":
        return "reproduced"
    return "not reproduced" if low >= margin or high <= -margin else "unclear"


def _lower(estimate, low, high, margin) -> str:
    """A contrast that the claim says is negative: `lower` reproduces it; `higher` or `same` does not."""
    return {"lower": "reproduced", "higher": "not reproduced", "same": "not reproduced"}.get(
        verdicts.direction(low, high, margin), "unclear")


def _collapses(estimate, low, high, margin) -> str:
    if np.isnan(low):
        return "unclear"
    return "reproduced" if low > COLLAPSE else "not reproduced" if high < COLLAPSE else "unclear"


CLAIMS = {claim.name: claim for claim in (
    Claim("constrained_recover_4bit", "each utility-constrained method's forgetting comes back at 4 bits "
          "(change of the recovery ratio from full precision)", _recovers, lambda e, m: e >= m),
    Claim("eight_bit_like_full", "8 bits behave like full precision (change within ±margin)", _same,
          lambda e, m: abs(e) < m),
    Claim("unconstrained_collapse", "GA and NPO without a retain term lose the model's utility at every precision "
          f"(share of the target's KnowMem-retain lost, above {COLLAPSE})", _collapses, lambda e, m: e > COLLAPSE),
    Claim("sure_keeps_4bit", "SURE keeps the forgetting at 4 bits (SURE's change from full precision)", _keeps,
          lambda e, m: e < m),
    Claim("sure_below_plain_4bit", "SURE recovers less than the same method without it (SURE's change minus the "
          "plain method's, paired by target and seed)", _lower, lambda e, m: e < 0),
    Claim("recovery_falls_with_lr", "a larger lr recovers less (the change at the largest lr minus the change at the "
          "smallest, paired by target and seed)", _lower, lambda e, m: e < 0),
)}


def claims(table: pd.DataFrame, samples: dict, default_lrs: list[float], paper: pd.DataFrame,
           margin: float = verdicts.MARGIN) -> pd.DataFrame:
    """Every claim the summary's grid can test, as rows (none for a claim whose methods, formats or lrs the grid
    lacks). `default_lrs`: `unlearning.lrs`, the lrs the method claims are read at (an lr sweep's other lrs feed
    the lr claim only); `paper`: resources/paper_muse_news.csv."""
    rows = _grid_rows(table)
    specs = methods()
    plain = _methods_where(rows, lambda m: not specs[m].sure)
    plain = plain[plain["lr"].astype(float).isin(default_lrs)]
    constrained = _methods_where(plain, lambda m: specs[m].constrained)
    sure = _methods_where(rows, lambda m: specs[m].sure and specs[m].constrained)
    quantized = lambda part, bits: part[(part["quantizer"] != "none") & (part["bits"] == bits)]  # noqa: E731
    found = [
        *_by_method(CLAIMS["constrained_recover_4bit"], quantized(constrained, 4), "ratio_vs_full", "ratio", samples,
                    margin, paper),
        *_by_method(CLAIMS["eight_bit_like_full"], quantized(constrained, 8), "ratio_vs_full", "ratio", samples,
                    margin, paper),
        *_by_method(CLAIMS["unconstrained_collapse"], _with_lost_utility(_methods_where(
            plain, lambda m: not specs[m].constrained)), "utility_lost", "utility_lost", samples, margin, paper),
        *_by_method(CLAIMS["sure_keeps_4bit"], quantized(sure, 4), "ratio_vs_full", "ratio", samples, margin, paper),
        *_sure_against_plain(quantized(sure, 4), quantized(constrained, 4), samples, margin),
        *_lr_contrasts(quantized(_methods_where(rows, lambda m: not specs[m].sure), 4), samples, margin),
    ]
    return pd.DataFrame(found, columns=CLAIM_COLUMNS)


def _grid_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The grid's unlearned models (not audited, not attacked; diverged ones too: they are what a user would
    serve), with their samples' key."""
    rows = table[~table["model"].isin(["target", "retrain"]) & (table["attack"] == "") & ~table["audited"]]
    return rows.assign(key=[tuple(values) for values in zip(*(rows[k] for k in ROW_KEYS))])


def _methods_where(rows: pd.DataFrame, predicate: Callable[[str], bool]) -> pd.DataFrame:
    """The rows whose method meets the predicate (a boolean mask also where no row does: an empty object mask
    would select columns)."""
    return rows[rows["method"].map(predicate).astype(bool)]


def _with_lost_utility(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(utility_lost=1 - rows["utility"])


def _samples_of(samples: dict, kind: str) -> Callable[[dict], np.ndarray]:
    if kind == "utility_lost":
        return lambda row: 1 - samples[row["key"]]["utility"]
    return lambda row: samples[row["key"]][kind]


def _estimate(rows: pd.DataFrame, column: str, samples_of: Callable, key: tuple) -> Change:
    """The nested estimate (method × lr cells within targets, then targets) per corpus, pooled over corpora."""
    changes = [nested_change(part, column, samples_of, group_rng((corpus, *key)))
               for corpus, part in rows.groupby("corpus", sort=True)]
    return changes[0] if len(changes) == 1 else pooled(changes)


def _row(claim: Claim, key: dict, change: Change, margin: float, paper: str = "", **extra) -> dict:
    low, high = bootstrap.interval(change.samples)
    by_target = list(change.by_target.values())
    return {"claim": claim.name, **key, "paper": paper, "estimate": change.estimate, "low": low, "high": high,
            "verdict": claim.decide(change.estimate, low, high, margin), "targets": len(by_target),
            "targets_supporting": sum(claim.supports(value, margin) for value in by_target), **extra}


def _by_method(claim: Claim, rows: pd.DataFrame, column: str, kind: str, samples: dict, margin: float,
               paper: pd.DataFrame) -> list[dict]:
    """Per stack × format: each method, then all of them pooled (where there are several)."""
    found = []
    for key, part in _each_method_and_pooled(rows):
        change = _estimate(part, column, _samples_of(samples, kind), _rng_key(claim, key))
        found.append(_row(claim, key, change, margin, _paper_figure(claim, paper, key["method"], key["format"],
                                                                    key["bits"])))
    return found


def _rng_key(claim: Claim, key: dict) -> tuple:
    """What seeds a row's bootstrap (summary.group_rng): its claim, stack, format and method."""
    return claim.name, key["stack"], key["format"], key["method"]


def _each_method_and_pooled(rows: pd.DataFrame):
    """Per stack × format: (its key, its rows) for each method, then for all of them pooled where there are
    several."""
    for (stack, format_id, bits), group in rows.groupby(["stack", "format", "bits"], sort=True):
        parts = [(name, part) for name, part in group.groupby("method", sort=True)]
        for name, part in parts + ([(POOLED, group)] if len(parts) > 1 else []):
            yield {"stack": stack, "format": format_id, "bits": bits, "method": name, "lr": _lrs(part)}, part


def _lrs(rows: pd.DataFrame) -> str:
    return ", ".join(f"{lr:g}" for lr in sorted(set(rows["lr"].astype(float))))


def _paired_difference(left: pd.DataFrame, right: pd.DataFrame, on: list[str],
                       samples: dict) -> tuple[pd.DataFrame, dict]:
    """Each left row's change minus its paired right row's (the same corpus, target, seed, stack and format), as
    rows that nest like the left's (their method and lr) with their samples under the key `difference`."""
    matched = left.merge(right[[*on, "ratio_vs_full", "key"]], on=on, suffixes=("", "_other"))
    differences = {(row_key, other): samples[row_key]["ratio"] - samples[other]["ratio"]
                   for row_key, other in zip(matched["key"], matched["key_other"])}
    return matched.assign(difference=matched["ratio_vs_full"] - matched["ratio_vs_full_other"],
                          key=list(zip(matched["key"], matched["key_other"]))), differences


def _sure_against_plain(sure: pd.DataFrame, plain: pd.DataFrame, samples: dict, margin: float) -> list[dict]:
    """SURE's change minus the same method's without SURE, per stack × format × method and pooled."""
    specs = methods()
    sure = sure.assign(base=sure["method"].map(lambda m: specs[m].base))
    plain = plain.assign(base=plain["method"])
    on = ["corpus", "rung", "target_seed", "seed", "stack", "format", "bits", "base"]
    matched, differences = _paired_difference(sure, plain, on, samples)
    claim, found = CLAIMS["sure_below_plain_4bit"], []
    for key, part in _each_method_and_pooled(matched):
        change = _estimate(part, "difference", lambda row: differences[row["key"]], _rng_key(claim, key))
        found.append(_row(claim, key, change, margin, "SURE keeps at 4 bits (figure; no table)"))
    return found


def _lr_contrasts(rows: pd.DataFrame, samples: dict, margin: float) -> list[dict]:
    """Per method with several lrs, stack and format: the change at its largest lr minus at its smallest, and the
    smallest lr whose own change is `kept` (where recovery stops) beside the lr the mechanism predicts (median of
    `bf16_threshold_lr` over the rows, where the mechanism measured it)."""
    claim, found = CLAIMS["recovery_falls_with_lr"], []
    for (method, stack, format_id, bits), group in rows.groupby(["method", "stack", "format", "bits"], sort=True):
        lrs = sorted(set(group["lr"].astype(float)))
        if len(lrs) < 2:
            continue
        by_lr = {lr: group[group["lr"].astype(float) == lr] for lr in lrs}
        on = ["corpus", "rung", "target_seed", "seed"]
        matched, differences = _paired_difference(by_lr[lrs[-1]], by_lr[lrs[0]], on, samples)
        change = _estimate(matched, "difference", lambda row: differences[row["key"]],
                           (claim.name, method, stack, format_id))
        key = {"stack": stack, "format": format_id, "bits": bits, "method": method, "lr": f"{lrs[-1]:g} - {lrs[0]:g}"}
        found.append(_row(claim, key, change, margin, "falls (the paper's theory)",
                          threshold_lr=_kept_from(by_lr, samples, margin, (method, stack, format_id)),
                          predicted_threshold_lr=_predicted(group)))
    return found


def _kept_from(by_lr: dict[float, pd.DataFrame], samples: dict, margin: float, key: tuple) -> float:
    """The smallest lr whose change from full precision is `kept` (NaN where none is)."""
    for lr, rows in by_lr.items():
        change = _estimate(rows, "ratio_vs_full", _samples_of(samples, "ratio"), ("threshold", *key, lr))
        if verdicts.verdict(change.estimate, *bootstrap.interval(change.samples), margin) == "kept":
            return lr
    return float("nan")


def _predicted(rows: pd.DataFrame) -> float:
    if "bf16_threshold_lr" not in rows or rows["bf16_threshold_lr"].isna().all():
        return float("nan")
    return float(rows["bf16_threshold_lr"].median())


TENSION_COLUMNS = ["stack", "method", "lr", "sure", "format", "utility_full", "utility_full_lo", "utility_full_hi",
                   "change", "change_lo", "change_hi", "targets"]


def tension_points(table: pd.DataFrame, samples: dict) -> pd.DataFrame:
    """The utility–robustness tension, one point per stack × method × lr (SURE or not) × 4-bit format: the share of
    its target's KnowMem-retain the model keeps at full precision, and its change of the recovery ratio at that
    format, each the nested estimate over targets and seeds with its 95% interval."""
    rows = _grid_rows(table)
    specs, found = methods(), []
    full = rows[rows["quantizer"] == "none"]
    for (stack, method, lr, format_id), group in rows[(rows["bits"] == 4) & (rows["quantizer"] != "none")].groupby(
            ["stack", "method", "lr", "format"], sort=True):
        at_full = full[(full["stack"] == stack) & (full["method"] == method) & (full["lr"] == lr)]
        key = ("tension", stack, method, lr, format_id)
        utility = _estimate(at_full, "utility", _samples_of(samples, "utility"), key)
        change = _estimate(group, "ratio_vs_full", _samples_of(samples, "ratio"), key)
        found.append({"stack": stack, "method": specs[method].base, "lr": float(lr), "sure": specs[method].sure,
                      "format": format_id, "utility_full": utility.estimate,
                      **dict(zip(("utility_full_lo", "utility_full_hi"), bootstrap.interval(utility.samples))),
                      "change": change.estimate,
                      **dict(zip(("change_lo", "change_hi"), bootstrap.interval(change.samples))),
                      "targets": len(change.by_target)})
    return pd.DataFrame(found, columns=TENSION_COLUMNS)


# The paper's numbers: its 4-bit is bitsandbytes FP4 and its 8-bit LLM.int8 (resources/paper_muse_news.csv).
PAPER_FORMAT = {4: "bnb-fp4-w4", 8: "bnb-int8-w8"}


def paper_changes(paper: pd.DataFrame, bits: int) -> dict[str, float]:
    """Per method the paper's table has at `bits`: the change of its mean recovery ratio from full precision. Each
    ratio divides by the target at the same precision, or at full precision where the table has no such target
    row (its 8-bit: only GA_KLR has one, and the target's 8-bit row is missing)."""
    precision = PAPER_FORMAT[bits]
    target = paper[paper["model"] == "target"].set_index("precision")
    def ratio(row, at):
        reference = target.loc[at] if at in target.index else target.loc["full"]
        return np.mean([row[m] / reference[m] for m in FORGET_METRICS])
    rows = paper[paper["method"] != ""].set_index(["method", "precision"])
    return {method: ratio(rows.loc[(method, precision)], precision) - ratio(rows.loc[(method, "full")], "full")
            for method, at in rows.index if at == precision}


def _paper_figure(claim: Claim, paper: pd.DataFrame, method: str, format_id: str, bits: int) -> str:
    if claim.name == "unconstrained_collapse":
        return "collapse (text; no table)"
    if claim.name == "sure_keeps_4bit":
        return "kept (figure; no table)"
    changes = paper_changes(paper, bits) if bits in PAPER_FORMAT else {}
    if method == POOLED and changes:
        return f"{np.mean(list(changes.values())):+.2f} (mean of {', '.join(sorted(changes))})"
    return f"{changes[method]:+.2f}" if method in changes else ""
