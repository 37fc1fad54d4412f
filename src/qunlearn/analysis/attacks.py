"""The verdict for an attack (results/attacks.csv, docs/attacks.md): does it bring back knowledge that unlearning
removed, beyond what it gives a model that never saw the forget set?

Per model, the held-out forget knowledge is the mean over VerbMem-f and KnowMem-f of its score on half B's items
(splits.py) as a fraction of its target's unattacked score there (over the metrics the target scores above 0 on; a
resample where the target's score is 0 is left out of the interval, as the recovery ratio's are). An attack's change is that fraction after the
attack minus before it; the verdict's quantity is the unlearned model's change minus the change of the retrain model
of the same target, pooled like the headline (utility-constrained grid methods, per corpus and `all`, precision
stack, SURE or not), with a hierarchical paired bootstrap interval: targets, then unlearning seeds, then B's items
(the same item draws for every model of a corpus, seeded by the corpus' name as bootstrap.Draws.for_corpus is).
"""

import numpy as np
import pandas as pd

from qunlearn.analysis import bootstrap, verdicts
from qunlearn.analysis.summary import group_rng, headline_rows, nested_change, nested_estimate
from qunlearn.data.splits import SPLIT_METRICS, ForgetSplit
from qunlearn.io import read_json

UTILITY = "knowmem_r"  # all of its items: the retain set is not split
PARTS = ("change", "unlearned_change", "retrain_change")
POINTS = ("unlearned_before", "unlearned_after", "retrain_before", "retrain_after", "target_after",
          "unlearned_utility_change", "retrain_utility_change")
ATTACK_COLUMNS = ["corpus", "stack", "sure", "attack", "kind",
                  *(f"{part}{suffix}" for part in PARTS for suffix in ("", "_lo", "_hi")), "verdict", *POINTS,
                  "targets", "models", "b_verbmem_items", "b_knowmem_items"]
GROUP = ["corpus", "stack", "sure", "attack"]


class HeldOutScores:
    """Each model's held-out knowledge from its metrics file's items, as arrays whose element 0 is the value on
    every item and elements 1.. its value under each bootstrap resample of the items."""

    def __init__(self, files: dict[tuple, str], splits: dict[str, ForgetSplit]):
        self.files, self.splits, self.draws = files, splits, {}

    def _means(self, corpus: str, target_seed: int, model: str, attack: str) -> dict[str, np.ndarray]:
        """B's mean of each forget metric and the mean of the utility metric, [1 + RESAMPLES] each."""
        items = read_json(self.files[(corpus, target_seed, model, attack)])["items"]
        kept = {**{m: np.asarray(items[m], dtype=float)[self.splits[corpus].items[m]["b"]] for m in SPLIT_METRICS},
                UTILITY: np.asarray(items[UTILITY], dtype=float)}
        if corpus not in self.draws:
            self.draws[corpus] = bootstrap.Draws.for_corpus(corpus, {m: len(v) for m, v in kept.items()}).by_metric
        return {m: np.concatenate([[v.mean()], bootstrap.resampled_means(v, self.draws[corpus][m])])
                for m, v in kept.items()}

    def model(self, corpus: str, target_seed: int, model: str, attack: str) -> dict[str, np.ndarray]:
        """`forget`: the held-out fraction of the target's (unattacked) knowledge before (`attack` "") or after the
        attack; `utility`: KnowMem-r on every retain item."""
        mine, target = self._means(corpus, target_seed, model, attack), self._means(corpus, target_seed, "target", "")
        known = [m for m in SPLIT_METRICS if target[m][0] > 0]  # where the target scores 0, there is nothing to recover
        with np.errstate(divide="ignore", invalid="ignore"):
            forget = np.mean([mine[m] / target[m] for m in known], axis=0) if known else np.full_like(mine[UTILITY], np.nan)
        return {"forget": np.where(np.isfinite(forget), forget, np.nan), "utility": mine[UTILITY]}


def attack_verdicts(table: pd.DataFrame, metric_files: list[str], rows: list[dict], splits: dict[str, ForgetSplit],
                    margin: float = verdicts.MARGIN) -> pd.DataFrame:
    """Per corpus (and `all`), precision stack, SURE or not, and attack: the unlearned models' change of held-out
    knowledge minus the retrain models' (`change`, its interval and verdict), each part with its interval, the held-out
    knowledge before and after (points), and each one's KnowMem-r change (points, all retain items)."""
    attacks = [a for a in dict.fromkeys(table["attack"]) if a]
    unlearned = headline_rows(table)
    unlearned = unlearned[unlearned["quantizer"] == "none"]
    if not attacks or unlearned.empty:
        return pd.DataFrame(columns=ATTACK_COLUMNS)
    files = {(r["corpus"], r["target_seed"], r["model"], r.get("attack", "")): path
             for path, r in zip(metric_files, rows, strict=True) if r["quantizer"] == "none"}
    changes = _changes(unlearned, attacks, HeldOutScores(files, splits))
    results = [_group_row(dict(zip(GROUP, key)), group, margin, splits)
               for key, group in changes.groupby(GROUP, sort=False)]
    for key, group in changes.groupby(GROUP[1:], sort=False):
        parts = [row for row in results if tuple(row[k] for k in GROUP[1:]) == key]
        results.append(_pooled_row(dict(zip(GROUP[1:], key), corpus="all"), parts, margin))
    return pd.DataFrame(results, columns=ATTACK_COLUMNS)


def _changes(unlearned: pd.DataFrame, attacks: list[str], scores: HeldOutScores) -> pd.DataFrame:
    """One row per unlearned model and attack: its change, its retrain model's, and both models' values."""
    records = []
    for attack in attacks:
        for row in unlearned.to_dict("records"):
            where = (row["corpus"], row["target_seed"])
            u_before, u_after = scores.model(*where, row["model"], ""), scores.model(*where, row["model"], attack)
            r_before, r_after = scores.model(*where, "retrain", ""), scores.model(*where, "retrain", attack)
            u_change, r_change = u_after["forget"] - u_before["forget"], r_after["forget"] - r_before["forget"]
            records.append({**{k: row[k] for k in ("corpus", "rung", "stack", "sure", "method", "lr", "target_seed",
                                                    "seed")}, "attack": attack,
                            "change": u_change - r_change, "unlearned_change": u_change, "retrain_change": r_change,
                            "unlearned_before": u_before["forget"][0], "unlearned_after": u_after["forget"][0],
                            "retrain_before": r_before["forget"][0], "retrain_after": r_after["forget"][0],
                            "target_after": scores.model(*where, "target", attack)["forget"][0],
                            "unlearned_utility_change": u_after["utility"][0] - u_before["utility"][0],
                            "retrain_utility_change": r_after["utility"][0] - r_before["utility"][0]})
    return pd.DataFrame(records)


def _group_row(key: dict, group: pd.DataFrame, margin: float, splits: dict[str, ForgetSplit]) -> dict:
    """One corpus' row, nested as the headline is (summary.nested_change): per target, the mean over method × lr
    cells of the mean over unlearning seeds, then over targets; the bootstrap resamples the seeds within each cell,
    the targets once for every cell, and B's items."""
    row = {**key, "kind": key["attack"].split("-")[0], **{p: nested_estimate(group, p)[0] for p in POINTS},
           "targets": group["target_seed"].nunique(), "models": len(group),
           **{f"b_{m.split('_')[0]}_items": len(splits[key["corpus"]].items[m]["b"]) for m in SPLIT_METRICS}}
    for part in PARTS:
        change = nested_change(group.assign(point=[values[0] for values in group[part]]), "point",
                               lambda r, part=part: r[part][1:], group_rng((*key.values(), part)))
        row[part], row[f"{part}_samples"] = change.estimate, change.samples
    return _with_intervals(row, margin)


def _pooled_row(key: dict, parts: list[dict], margin: float) -> dict:
    """`all`: the mean over corpora of each corpus' points and samples."""
    row = {**key, "kind": key["attack"].split("-")[0], **{p: np.mean([r[p] for r in parts]) for p in POINTS},
           **{c: sum(r[c] for r in parts) for c in ("targets", "models", "b_verbmem_items", "b_knowmem_items")}}
    for part in PARTS:
        row[part] = float(np.mean([r[part] for r in parts]))
        row[f"{part}_samples"] = np.mean([r[f"{part}_samples"] for r in parts], axis=0)
    return _with_intervals(row, margin)


def _with_intervals(row: dict, margin: float) -> dict:
    """Each part's interval from its samples (kept in the row for `all`, left out of the table), and the verdict."""
    for part in PARTS:
        row[f"{part}_lo"], row[f"{part}_hi"] = bootstrap.interval(row[f"{part}_samples"])
    row["verdict"] = verdicts.verdict(row["change"], row["change_lo"], row["change_hi"], margin)
    return row
