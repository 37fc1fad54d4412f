"""One table of every corpus × target × model × precision, with PrivLeak against the retrain model, recovery ratios
and the share of the target's excess over retrain that remains; and the verdicts drawn from it."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from qunlearn.analysis import bootstrap, verdicts
from qunlearn.evaluate.metrics import privleak
from qunlearn.io import read_json, write_text
from qunlearn.registry import STACKS, methods

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")
ITEM_METRICS = ("verbmem_f", "knowmem_f", "knowmem_r")  # means over items, each with a bootstrap interval
FORGET_METRICS = ("verbmem_f", "knowmem_f")
QUANTIZATION_KEYS = ["format", "quantizer", "bits", "group_size"]  # format: the id (full, rtn-w4g64, bnb-fp4-w4)
# An attacked model (attack.smk) is a format of its own: the attack's id, "" for every other row.
FORMAT_KEYS = [*QUANTIZATION_KEYS, "attack"]
# A target is a corpus' target seed at the run's own width (rung 0) or at a rung of the width ladder (model.widths;
# `rung` its hidden size), whose targets share the run's seeds. `width` is every row's hidden size, the run's own too.
TARGET_KEYS = ["corpus", "rung", "target_seed"]
OWN_WIDTH = 0  # the `rung` of the run's own width
ROW_KEYS = [*TARGET_KEYS, "model", *FORMAT_KEYS]
FULL = dict(format="full", quantizer="none", bits=32, group_size="", attack="")
# The two views of how much forget-set knowledge a model keeps, per forget metric m at precision p:
# the paper's ratio m(model, p) / m(target, p), and the share of the target's excess over the retrain model
# that remains, (m(model, p) - m(retrain, p)) / (m(target, p) - m(retrain, p)), whose floor is the retrain model.
VIEWS = ("ratio", "excess")


def summarize(metric_files: list[str], rows: list[dict], records: list[tuple[str, dict]], auc_retrain: dict,
              mechanism: list[tuple[str, dict]] = (), margin: float = verdicts.MARGIN) -> tuple[pd.DataFrame, dict]:
    """rows[i] names the corpus, target seed, model, method, lr, quantizer, bits, group size and config hash of
    metric_files[i]; `records` and `mechanism` pair each unlearning record and mechanism JSON with its row.
    Package versions come from the metrics files, as the evaluation recorded them. Returns the table and, per
    unlearned row under a format, the bootstrap samples of the change of each view from full precision."""
    entries, items = [], []
    for path, row in zip(metric_files, rows, strict=True):
        result = read_json(path)
        packages = {f"{name}_version": version for name, version in result.get("packages", {}).items()}
        entries.append({"attack": "", **row, **{k: result[k] for k in ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_auc")},
                        **packages})
        items.append(result["items"])
    table = pd.DataFrame.from_records(entries)
    table["diverged"], table["merge_surviving_share"] = _from_records(table, records)
    table["privleak"] = [privleak(auc, _reference_auc(table, target, auc_retrain))
                         for *target, auc in zip(*(table[k] for k in TARGET_KEYS), table["privleak_auc"])]
    resampled = resampled_metrics(table, items)
    table = add_intervals(add_views(table), resampled)
    table, samples = add_paired_changes(table, resampled, margin)
    return add_mechanism(add_utility(table, resampled, samples), mechanism), samples


def _from_records(table: pd.DataFrame, records: list[tuple[str, dict]]) -> tuple[list[bool], list[float]]:
    """Per row, from its model's unlearning record: whether unlearning diverged, and for an adapter merged into the
    target the share of its delta the merge kept (adapters.merged_with_survival; NaN for every other model)."""
    by_model = {tuple(row[k] for k in (*TARGET_KEYS, "model")): read_json(path) for path, row in records}
    keys = list(zip(*(table[k] for k in (*TARGET_KEYS, "model"))))
    return ([key in by_model and by_model[key]["diverged"] for key in keys],
            [by_model[key]["merge"]["surviving_share"] if "merge" in by_model.get(key, {}) else np.nan for key in keys])


def resampled_metrics(table: pd.DataFrame, items: list[dict]) -> list[dict[str, np.ndarray]]:
    """Per row, each item metric's mean under every bootstrap resample of its corpus' items (the same draws for
    every target and model of the corpus)."""
    first_row = {}
    for i, corpus in enumerate(table["corpus"]):
        first_row.setdefault(corpus, i)
    draws = {corpus: bootstrap.Draws.for_corpus(corpus, {m: len(items[i][m]) for m in ITEM_METRICS})
             for corpus, i in first_row.items()}
    return [{m: bootstrap.resampled_means(row_items[m], draws[corpus].by_metric[m]) for m in ITEM_METRICS}
            for corpus, row_items in zip(table["corpus"], items, strict=True)]


def add_intervals(table: pd.DataFrame, resampled: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """`<metric>_lo`, `<metric>_hi`: the 95% bootstrap interval of each item metric."""
    for metric in ITEM_METRICS:
        bounds = [bootstrap.interval(row[metric]) for row in resampled]
        table[f"{metric}_lo"], table[f"{metric}_hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return table


def _reference_rows(table: pd.DataFrame, role: str) -> np.ndarray:
    """For every row, the position of its own target's (or retrain model's) row at the same format."""
    keys, at = [*TARGET_KEYS, *FORMAT_KEYS], len(TARGET_KEYS)
    position = {key: i for i, key in enumerate(zip(*(table[k] for k in ROW_KEYS)))}
    return np.array([position.get((*key[:at], role, *key[at:]), -1) for key in zip(*(table[k] for k in keys))])


def view_values(model: dict, target: dict, retrain: dict, view: str) -> dict:
    """Each forget metric's value in one view, from the model's, its target's and its retrain model's values (numbers
    or arrays of resampled means) at one precision."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if view == "ratio":
            return {m: np.divide(model[m], target[m]) for m in FORGET_METRICS}
        return {m: np.divide(np.subtract(model[m], retrain[m]), np.subtract(target[m], retrain[m])) for m in FORGET_METRICS}


def add_views(table: pd.DataFrame) -> pd.DataFrame:
    """`<metric>_ratio` (the paper's headline quantity) and `<metric>_excess` for the forget metrics: 1 for the
    target, 0 for the retrain model in the excess view, at every precision."""
    target, retrain = _reference_rows(table, "target"), _reference_rows(table, "retrain")
    values = {m: table[m].to_numpy(dtype=float) for m in FORGET_METRICS}
    def at(rows: np.ndarray) -> dict:
        return {m: np.where(rows >= 0, v[np.maximum(rows, 0)], np.nan) for m, v in values.items()}
    for view in VIEWS:
        for metric, value in view_values(values, at(target), at(retrain), view).items():
            table[f"{metric}_{view}"] = value
    return table


def add_paired_changes(table: pd.DataFrame, resampled: list[dict[str, np.ndarray]],
                       margin: float) -> tuple[pd.DataFrame, dict]:
    """For each unlearned model under a format and each view: the change of its mean over the forget metrics from
    the same model at full precision (`ratio_vs_full`, `excess_vs_full`), with a paired bootstrap interval (the same
    items for the model, its target and its retrain model at both precisions) and its verdict (`verdict`,
    `excess_verdict`)."""
    position = {key: i for i, key in enumerate(zip(*(table[k] for k in ROW_KEYS)))}

    def at(row: dict, **change) -> int:
        return position[tuple({**row, **change}[k] for k in ROW_KEYS)]

    samples, columns = {}, {f"{view}_{c}": [] for view in VIEWS for c in ("vs_full", "vs_full_lo", "vs_full_hi", "verdict")}
    with np.errstate(divide="ignore", invalid="ignore"):  # a view is undefined (NaN) where its denominator is 0
        for i, row in enumerate(table[ROW_KEYS].to_dict("records")):
            if row["model"] in ("target", "retrain") or row["format"] == "full":
                for values in columns.values():
                    values.append(None)
                continue
            here = [resampled[at(row, model=m)] if m else resampled[i] for m in (None, "target", "retrain")]
            full = [resampled[at(row, **FULL, model=m)] if m else resampled[at(row, **FULL)] for m in (None, "target", "retrain")]
            samples[tuple(row.values())] = {}
            for view in VIEWS:
                change = np.mean([view_values(*here, view)[m] - view_values(*full, view)[m] for m in FORGET_METRICS], axis=0)
                samples[tuple(row.values())][view] = change
                point = np.mean([table[f"{m}_{view}"].iloc[i] - table[f"{m}_{view}"].iloc[at(row, **FULL)]
                                 for m in FORGET_METRICS])
                low, high = bootstrap.interval(change)
                for name, value in zip(("vs_full", "vs_full_lo", "vs_full_hi", "verdict"),
                                       (point, low, high, verdicts.verdict(point, low, high, margin))):
                    columns[f"{view}_{name}"].append(value)
    return table.assign(**columns).rename(columns={"ratio_verdict": "verdict"}), samples


def add_utility(table: pd.DataFrame, resampled: list[dict[str, np.ndarray]], samples: dict) -> pd.DataFrame:
    """`utility`: each unlearned model's KnowMem-retain as a share of its target's at the same format, and its
    resampled values (paired on the same items) as samples[row]["utility"], at full precision too."""
    target, values = _reference_rows(table, "target"), table["knowmem_r"].to_numpy(dtype=float)
    utility = np.full(len(table), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # undefined where the target scores 0
        for i, row in enumerate(table[ROW_KEYS].to_dict("records")):
            if row["model"] not in ("target", "retrain") and target[i] >= 0:
                utility[i] = values[i] / values[target[i]]
                samples.setdefault(tuple(row.values()), {})["utility"] = (resampled[i]["knowmem_r"]
                                                                          / resampled[target[i]]["knowmem_r"])
    return table.assign(utility=utility)


def at_own_width(table: pd.DataFrame) -> pd.DataFrame:
    """Every row but the width ladder's rungs' (model.widths): the claims, attacks, tables and figures read the run's
    own width; widths.csv reads the ladder."""
    return table[table["rung"] == OWN_WIDTH]


def unattacked(table: pd.DataFrame) -> pd.DataFrame:
    """Every row but the attacked models' (attacks.csv holds what the attacks did)."""
    return table[table["attack"] == ""]


def unlearned_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The unlearned models' rows, the grid's and the audited ones."""
    return table[~table["model"].isin(["target", "retrain"])]


def read_summary(path: str | Path) -> pd.DataFrame:
    """results/summary.csv as `summarize` made it: text columns that may be empty stay text."""
    table = pd.read_csv(path)
    return table.assign(**{c: table[c].fillna("").astype(str) for c in ("method", "stack", "attack")})


def add_mechanism(table: pd.DataFrame, mechanism: list[tuple[str, dict]]) -> pd.DataFrame:
    """Columns from the mechanism JSON (all decoder-layer Linear weights): `moved`, the fraction of weights
    that unlearning moved; `same_code`, the fraction whose quantized value equals the target's;
    `surviving_update` and `surviving_norm`, how much of the update the format keeps; `below_<t>_steps`, the
    fraction that moved by less than t of the target's quantization steps; `moved_near_zero_code`, the fraction
    of moved weights in the target's zero (or near-zero) code; `bf16_threshold_lr`, the lr below which a pure-bf16
    update cannot leave the format's zero bin (median over groups)."""
    measured = pd.DataFrame([{**{k: row[k] for k in ROW_KEYS}, **_mechanism_columns(read_json(path))}
                             for path, row in mechanism])
    if measured.empty:
        return table
    return table.merge(measured, on=ROW_KEYS, how="left")


def _mechanism_columns(result: dict) -> dict:
    threshold = result.get("bf16_threshold_lr")
    return {**result["all"], "moved_near_zero_code": result["location"]["all"]["moved_near_zero_code"],
            "bf16_threshold_lr": threshold["all"] if threshold else None}


def _reference_auc(table: pd.DataFrame, target: list, auc_retrain: dict) -> float:
    """The configured AUC (real MUSE), else the full-precision AUC of the retrain model of the same target (corpus,
    rung and target seed)."""
    if auc_retrain.get(target[0]) is not None:
        return auc_retrain[target[0]]
    same_target = np.logical_and.reduce([table[k] == v for k, v in zip(TARGET_KEYS, target)])
    row = table[same_target & (table["model"] == "retrain") & (table["quantizer"] == "none") & (table["attack"] == "")]
    return float(row["privleak_auc"].iloc[0])


HEADLINE_KEYS = ["stack", "sure", *QUANTIZATION_KEYS, "rung"]  # every rung of the width ladder its own headline
CHANGE_COLUMNS = [f"{prefix}{suffix}" for prefix in ("vs_full", "excess_vs_full") for suffix in ("", "_lo", "_hi")]
HEADLINE_COLUMNS = ["corpus", *HEADLINE_KEYS, "mean_recovery_ratio", "mean_excess", "values", "targets",
                    *CHANGE_COLUMNS, "verdict", "excess_verdict", "targets_agree", "target_verdicts",
                    "excess_targets_agree", "excess_target_verdicts"]
CONTRAST_COLUMNS = ["corpus", "rung", "sure", *QUANTIZATION_KEYS, "stack", "baseline", "contrast", "contrast_lo",
                    "contrast_hi", "verdict", "targets", "targets_above"]


def headline_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The grid's utility-constrained, non-diverged unlearned rows (audited models have their own `verdicts`), not
    attacked (attacks.csv has those)."""
    table = unattacked(table)
    specs = methods()  # the registry's: a method is constrained by its retain term (registry.Method.constrained)
    constrained = table["method"].map(lambda name: name in specs and specs[name].constrained).astype(bool)
    rows = table[constrained & ~table["diverged"] & ~table["audited"]]
    return rows.assign(sure=rows["method"].map(lambda name: specs[name].sure).astype(bool))


def group_rng(key) -> np.random.Generator:
    """A generator per group, seeded by the group's own key: its interval does not depend on the other groups."""
    return np.random.default_rng([bootstrap.SEED, *"|".join(map(str, key)).encode()])


def group_key(values: dict) -> tuple:
    """A group's key for its generator: its values, the rung left out at the run's own width (whose intervals
    stay those of runs before the width ladder)."""
    return tuple(v for k, v in values.items() if not (k == "rung" and v == OWN_WIDTH))


def _forget_mean(rows: pd.DataFrame, view: str) -> pd.Series:
    """Each row's mean of a view over the forget metrics (undefined where either is)."""
    return rows[[f"{m}_{view}" for m in FORGET_METRICS]].mean(axis=1, skipna=False)


@dataclass
class Change:
    """One group's change from full precision: its estimate, its bootstrap samples, and each target's estimate."""
    estimate: float
    samples: np.ndarray
    by_target: dict[tuple, float]  # (corpus, rung, target_seed) -> that target's own estimate


def _cells_by_target(rows: pd.DataFrame):
    """(corpus, rung, target seed) -> the target's method × lr cells, each the rows of its unlearning seeds."""
    for target, target_rows in rows.groupby(TARGET_KEYS, sort=True):
        yield target, [cell for _, cell in target_rows.groupby(["method", "lr"], sort=False)]


def nested_estimate(rows: pd.DataFrame, column: str) -> tuple[float, dict[tuple, float]]:
    """One corpus' rows of a group: per target, the mean over method × lr cells of the mean over each cell's
    unlearning seeds; then the mean over targets (undefined where any row is). Returns it and each target's."""
    by_target = {target: float(np.mean([np.mean(cell[column].to_numpy(float)) for cell in cells]))
                 for target, cells in _cells_by_target(rows)}
    return float(np.mean(list(by_target.values()))), by_target


def nested_change(rows: pd.DataFrame, column: str, samples_of: Callable[[dict], np.ndarray],
                  rng: np.random.Generator) -> Change:
    """`nested_estimate` with its bootstrap, nested alike: the seeds resampled within each cell, then the targets
    resampled; each row's samples already resample the items (one draw per corpus, so every model and target is
    paired on the same items)."""
    estimate, by_target = nested_estimate(rows, column)
    per_target = [np.mean([bootstrap.seed_mean(np.stack([samples_of(r) for r in cell.to_dict("records")]), rng)
                           for cell in cells], axis=0) for _, cells in _cells_by_target(rows)]
    return Change(estimate, bootstrap.target_mean(np.stack(per_target), rng), by_target)


def pooled(changes: list[Change]) -> Change:
    """`all` corpora: the mean over the corpora's changes."""
    return Change(float(np.mean([c.estimate for c in changes])), np.mean([c.samples for c in changes], axis=0),
                  {target: value for c in changes for target, value in c.by_target.items()})


def headline(table: pd.DataFrame, samples: dict | None = None, margin: float = verdicts.MARGIN,
             by_target: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's headline ("21% at full precision, 83% after 4-bit"): per corpus (and `all` corpora), precision
    stack while unlearning, SURE or not, and format, the mean recovery ratio over the utility-constrained methods,
    learning rates, targets, unlearning seeds and both forget metrics of the grid (nested: seeds within a method ×
    lr cell, cells within a target, then targets, then corpora for `all`); `vs_full` is its change from full
    precision (the same rows unquantized), the size of the recovery; `mean_excess` and `excess_vs_full` the same
    in the excess view. Given `samples` (from `summarize`), each change gets its hierarchical bootstrap interval
    (targets, then unlearning seeds within each target, then items), a verdict, and the targets' own verdicts
    (from `by_target`, `headline_by_target`'s table, computed here if not given)."""
    rows = headline_rows(table)
    if rows.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    results = []
    for key, group in rows.groupby(HEADLINE_KEYS, sort=False, dropna=False):
        parts = {corpus: _corpus_entry(part, group_key({"corpus": corpus, **dict(zip(HEADLINE_KEYS, key))}), samples,
                                       margin)
                 for corpus, part in group.groupby("corpus", sort=False)}
        for corpus, (entry, _) in parts.items():
            results.append({"corpus": corpus, **dict(zip(HEADLINE_KEYS, key)), **entry})
        results.append({"corpus": "all", **dict(zip(HEADLINE_KEYS, key)), **_pooled_entry(list(parts.values()),
                                                                                          group, margin)})
    means = pd.DataFrame(results)
    means = means.iloc[np.argsort(means["corpus"].eq("all").to_numpy(), kind="stable")]  # the corpora, then `all`
    if samples is None:
        return means[[c for c in HEADLINE_COLUMNS if c in means]].reset_index(drop=True)
    by_target = headline_by_target(table, samples, margin) if by_target is None else by_target
    for prefix in ("vs_full", "excess_vs_full"):
        means = means.merge(_agreement(by_target, means, prefix), on=["corpus", *HEADLINE_KEYS], how="left")
    return means[HEADLINE_COLUMNS]


def _corpus_entry(rows: pd.DataFrame, key: tuple, samples: dict | None, margin: float) -> tuple[dict, dict]:
    """One corpus' (or one target's) group: its levels, counts and changes, and the changes themselves."""
    changes = {view: None if rows["quantizer"].iloc[0] == "none" or samples is None else
               nested_change(rows, f"{view}_vs_full", lambda r, view=view: samples[_row_key(r)][view],
                             group_rng((*key, view)))
               for view in VIEWS}
    levels = {column: nested_estimate(rows.assign(level=_forget_mean(rows, view)), "level")[0]
              for view, column in (("ratio", "mean_recovery_ratio"), ("excess", "mean_excess"))}
    counts = {"values": len(rows) * len(FORGET_METRICS), "targets": rows[TARGET_KEYS].drop_duplicates().shape[0]}
    return {**levels, **counts, **_change_columns(changes, rows, margin)}, changes


def _pooled_entry(parts: list[tuple[dict, dict]], rows: pd.DataFrame, margin: float) -> dict:
    """`all` corpora: the mean over the corpora of their levels and changes."""
    entries = [entry for entry, _ in parts]
    changes = {view: None if parts[0][1][view] is None else pooled([c[view] for _, c in parts]) for view in VIEWS}
    means = {column: float(np.mean([entry[column] for entry in entries]))
             for column in ("mean_recovery_ratio", "mean_excess", "vs_full", "excess_vs_full")}
    return {**_change_columns(changes, rows, margin), **means,  # without samples, the corpora's mean estimates
            **{count: sum(entry[count] for entry in entries) for count in ("values", "targets")}}


def _row_key(row: dict) -> tuple:
    return tuple(row[k] for k in ROW_KEYS)


def _change_columns(changes: dict[str, Change | None], rows: pd.DataFrame, margin: float) -> dict:
    """Each view's change, interval and verdict (0 and no verdict at full precision; without samples, the nested
    estimate alone)."""
    columns = {}
    for view, prefix in zip(VIEWS, ("vs_full", "excess_vs_full")):
        change, full = changes[view], rows["quantizer"].iloc[0] == "none"
        if change is None:
            estimate = 0.0 if full else nested_estimate(rows, f"{view}_vs_full")[0]
            bounds, verdict = ((0.0, 0.0) if full else (np.nan, np.nan)), ""
        else:
            estimate, bounds = change.estimate, bootstrap.interval(change.samples)
            verdict = verdicts.verdict(estimate, *bounds, margin)
        columns.update({prefix: estimate, f"{prefix}_lo": bounds[0], f"{prefix}_hi": bounds[1],
                        _verdict_column(prefix): verdict})
    return columns


def _verdict_column(prefix: str) -> str:
    return "verdict" if prefix == "vs_full" else "excess_verdict"


def headline_by_target(table: pd.DataFrame, samples: dict, margin: float = verdicts.MARGIN) -> pd.DataFrame:
    """The headline per target: per corpus, target seed, stack, SURE and format, both views' levels and changes
    from full precision with intervals over that target's unlearning seeds and the items, and their verdicts."""
    rows = headline_rows(table)
    columns = ["corpus", "target_seed", *(c for c in HEADLINE_COLUMNS if c != "corpus" and "target" not in c)]
    results = []
    for (corpus, target_seed, *key), group in rows.groupby(["corpus", "target_seed", *HEADLINE_KEYS], sort=False,
                                                          dropna=False):
        entry, _ = _corpus_entry(group, group_key({"corpus": corpus, "target_seed": target_seed,
                                                   **dict(zip(HEADLINE_KEYS, key))}), samples, margin)
        results.append({"corpus": corpus, "target_seed": target_seed, **dict(zip(HEADLINE_KEYS, key)), **entry})
    return pd.DataFrame(results, columns=columns) if results else pd.DataFrame(columns=columns)


METHOD_COLUMNS = ["method", "lr", *HEADLINE_COLUMNS]


def headline_by_method(table: pd.DataFrame, samples: dict, margin: float = verdicts.MARGIN) -> pd.DataFrame:
    """The headline of each method × lr alone (SURE methods are methods of their own): which methods carry the
    pooled change, with the same nesting, intervals, verdicts and targets' agreement."""
    cells = headline_rows(table)[["method", "lr"]].drop_duplicates()
    parts = [headline(table[(table["method"] == method) & (table["lr"] == lr)], samples, margin).assign(method=method, lr=lr)
             for method, lr in cells.itertuples(index=False)]
    return pd.concat(parts, ignore_index=True)[METHOD_COLUMNS] if parts else pd.DataFrame(columns=METHOD_COLUMNS)


def _agreement(by_target: pd.DataFrame, means: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per headline group, the targets' own verdicts: how many reach the pooled verdict (`targets_agree`) and how
    many reach each verdict (`target_verdicts`, e.g. "recovered 2, kept 1"); `excess_` versions for the excess
    view; none at full precision."""
    column, keys = _verdict_column(prefix), ["corpus", *HEADLINE_KEYS]
    names = ("targets_agree", "target_verdicts") if prefix == "vs_full" else ("excess_targets_agree",
                                                                            "excess_target_verdicts")
    pooled_verdicts = means[[*keys, column]].rename(columns={column: "pooled"})
    mine = by_target[[*keys, "target_seed", column]]
    overall = mine.drop(columns="corpus").merge(pooled_verdicts[pooled_verdicts["corpus"] == "all"], on=HEADLINE_KEYS)
    matched = pd.concat([mine.merge(pooled_verdicts, on=keys), overall], ignore_index=True)
    matched["agree"] = matched[column] == matched["pooled"]
    grouped = matched.groupby(keys, sort=False, dropna=False)
    counts = pd.DataFrame({names[0]: grouped["agree"].sum(), names[1]: grouped[column].agg(
        lambda verdicts: ", ".join(f"{v} {n}" for v, n in Counter(verdicts).most_common()))}).reset_index()
    result = means[keys].merge(counts, on=keys, how="left")
    result.loc[means["quantizer"].to_numpy() == "none", list(names)] = None
    return result.astype({names[0]: "Int64"})  # a count, empty at full precision


def contrast(table: pd.DataFrame, samples: dict, margin: float = verdicts.MARGIN) -> pd.DataFrame:
    """qunlearn's own claim, tested: per corpus (and `all`), SURE or not, format, precision stack and baseline stack
    (fp32 and mixed, which keep fp32 master weights), the change of the recovery ratio under the stack minus the
    change under the baseline, paired by method, lr, target and unlearning seed, nested and resampled as the
    headline is (targets, seeds within them, items), and `higher` (the interval lies above 0: the stack recovers
    more than the baseline), `lower` (below 0), `same` (within ±margin) or `unclear`; `targets_above` counts the targets whose own
    difference is above 0."""
    rows = headline_rows(table)
    rows = rows[rows["quantizer"] != "none"]
    if rows.empty:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    rows = rows.assign(change=[samples[key]["ratio"] for key in zip(*(rows[k] for k in ROW_KEYS))])
    keys, pairs = ["sure", *FORMAT_KEYS, "rung"], ["corpus", "method", "lr", "target_seed", "seed"]
    # every other stack is compared with those with fp32 master weights
    baselines = [name for name, stack in STACKS.items() if stack.fp32_master and name in set(rows["stack"])]
    results = []
    for key, group in rows.groupby(keys, sort=False, dropna=False):
        by_stack = {stack: part.set_index(pairs) for stack, part in group.groupby("stack", sort=False)}
        for baseline in baselines:
            for stack, part in by_stack.items():
                matched = part.join(by_stack.get(baseline, part.iloc[:0]), how="inner", suffixes=("", "_base"))
                if stack == baseline or matched.empty:
                    continue
                changes = [_contrast_change(corpus_rows, group_key({"corpus": corpus, **dict(zip(keys, key)),
                                                                    "stack": stack, "baseline": baseline}))
                           for corpus, corpus_rows in matched.reset_index().groupby("corpus", sort=False)]
                for corpus, change in [*zip(matched.index.unique("corpus"), changes), ("all", pooled(changes))]:
                    results.append(_contrast_row({"corpus": corpus, **dict(zip(keys, key))}, stack, baseline, change,
                                                 margin))
    result = pd.DataFrame(results, columns=CONTRAST_COLUMNS)
    return result.iloc[np.lexsort([result["corpus"].eq("all").to_numpy()])].reset_index(drop=True)


def _contrast_change(matched: pd.DataFrame, key: tuple) -> Change:
    """One corpus' stack-against-baseline pairs: the difference of their changes, nested and resampled."""
    matched = matched.assign(difference=matched["ratio_vs_full"] - matched["ratio_vs_full_base"])
    return nested_change(matched, "difference", lambda r: r["change"] - r["change_base"], group_rng(key))


def _contrast_row(key: dict, stack: str, baseline: str, change: Change, margin: float) -> dict:
    low, high = bootstrap.interval(change.samples)
    above = np.array(list(change.by_target.values()))
    return {**key, "stack": stack, "baseline": baseline, "contrast": change.estimate,
            "contrast_lo": low, "contrast_hi": high, "verdict": verdicts.direction(low, high, margin), "targets": len(above),
            "targets_above": int((above > 0).sum())}


def without_lone_pool(pooled_table: pd.DataFrame) -> pd.DataFrame:
    """A pooled table's rows to show: `all` only where it pools several corpora (with one it repeats its rows)."""
    return pooled_table if pooled_table["corpus"].nunique() > 2 else pooled_table[pooled_table["corpus"] != "all"]


def format_table(table: pd.DataFrame, headline_table: pd.DataFrame, contrast_table: pd.DataFrame) -> str:
    """The text printed at the end of a run: every row, then the answer (last, where a terminal shows it)."""
    number = lambda x: f"{x:.2f}"  # noqa: E731
    attacked = ["attack"] if (table["attack"] != "").any() else []
    width = ["rung"] if (table["rung"] != OWN_WIDTH).any() else []  # the width ladder's runs
    columns = ["corpus", *width, "target_seed", "model", "quantizer", "bits", *attacked, *METRICS,
               *(f"{m}_ratio" for m in FORGET_METRICS)]
    text = [table[columns].to_string(index=False, float_format=number), ""]
    audited = model_verdicts(table[table["audited"]])
    if not audited.empty:
        columns = ["corpus", *width, "target_seed", "model", "quantizer", "bits", "ratio_vs_full", "ratio_vs_full_lo",
                   "ratio_vs_full_hi", "verdict"]
        text += ["Audited models: change of the recovery ratio from full precision, 95% interval, verdict:",
                 audited[columns].to_string(index=False, float_format=lambda x: f"{x:+.2f}"), ""]
    if not headline_table.empty:
        quantized = without_lone_pool(headline_table[headline_table["quantizer"] != "none"])
        columns = ["corpus", *width, "stack", "sure", "quantizer", "bits", "mean_recovery_ratio", "vs_full",
                   "vs_full_lo", "vs_full_hi", "verdict", "targets", "targets_agree"]
        text += ["Does forgetting come back? Change of the mean recovery ratio from full precision (utility-constrained "
                 "methods), 95% interval over targets, seeds and items, verdict, and how many targets agree:",
                 quantized[[c for c in columns if c in quantized]].to_string(index=False, float_format=number), ""]
    if not contrast_table.empty:
        columns = ["corpus", *width, "sure", "quantizer", "bits", "stack", "baseline", "contrast", "contrast_lo",
                   "contrast_hi", "verdict", "targets", "targets_above"]
        text += ["Does a stack recover more than one with fp32 master weights? Its change minus the baseline's:",
                 without_lone_pool(contrast_table)[columns].to_string(index=False, float_format=number), ""]
    return "\n".join(text)


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric value (tidy data for plotting): the key columns, `metric` and `value`."""
    values = [*METRICS, "privleak_auc", "utility", *(f"{m}_{view}" for view in VIEWS for m in FORGET_METRICS)]
    values += [c for c in table.columns
               if c in ("moved", "same_code", "moved_near_zero_code", "bf16_threshold_lr")
               or c.startswith(("below_", "surviving_"))]
    keys = [c for c in table.columns if c not in values]
    return table.melt(id_vars=keys, value_vars=values, var_name="metric", value_name="value").dropna(subset=["value"])


VERDICT_COLUMNS = ["corpus", "rung", "width", "target_seed", "model", "audited", "method", "lr", "stack", "seed",
                   "quantizer", "bits", "group_size", *FORGET_METRICS,
                   *(f"{m}_{view}" for view in VIEWS for m in FORGET_METRICS),
                   "ratio_vs_full", "ratio_vs_full_lo", "ratio_vs_full_hi", "verdict",
                   "excess_vs_full", "excess_vs_full_lo", "excess_vs_full_hi", "excess_verdict", "surviving_update"]


def model_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per unlearned model (the grid's and the audited ones) × quantized format: its forget metrics and
    both views there, each view's change from full precision with its interval and verdict, and the share of the
    unlearning update that the format keeps."""
    rows = unlearned_rows(table)
    rows = rows[rows["quantizer"] != "none"]
    return rows[[c for c in VERDICT_COLUMNS if c in rows]]


def write_summary(table: pd.DataFrame, samples: dict, margin: float, paths: dict[str, str]) -> None:
    """paths: csv, long, text, headline, by_target, by_method, contrast, verdicts."""
    by_target = headline_by_target(table, samples, margin)
    headline_table, contrast_table = headline(table, samples, margin, by_target), contrast(table, samples, margin)
    write_text(paths["csv"], table.to_csv(index=False))
    write_text(paths["long"], long_form(table).to_csv(index=False))
    write_text(paths["headline"], headline_table.to_csv(index=False))
    write_text(paths["by_target"], by_target.to_csv(index=False))
    write_text(paths["by_method"], headline_by_method(table, samples, margin).to_csv(index=False))
    write_text(paths["contrast"], contrast_table.to_csv(index=False))
    write_text(paths["verdicts"], model_verdicts(table).to_csv(index=False))
    write_text(paths["text"], format_table(table, headline_table, contrast_table))
