"""One table of every corpus × target × model × precision, with PrivLeak against the retrain model, recovery ratios
and the share of the target's excess over retrain that remains; and the verdicts drawn from it."""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import confidence
from .grid import SURE_SUFFIX
from .io import read_json, write_text
from .metrics import privleak

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")
ITEM_METRICS = ("verbmem_f", "knowmem_f", "knowmem_r")  # means over items, each with a bootstrap interval
FORGET_METRICS = ("verbmem_f", "knowmem_f")
CONSTRAINED_METHODS = ("ga_gdr", "ga_klr", "npo_gdr", "npo_klr")  # those with a utility (retain) term
QUANTIZATION_KEYS = ["quantizer", "bits", "group_size"]
# An attacked model (attack.smk) is a format of its own: the attack's id, "" for every other row.
FORMAT_KEYS = [*QUANTIZATION_KEYS, "attack"]
ROW_KEYS = ["corpus", "target_seed", "model", *FORMAT_KEYS]
FULL = dict(quantizer="none", bits=32, group_size="", attack="")
# The two views of how much forget-set knowledge a model keeps, per forget metric m at precision p:
# the paper's ratio m(model, p) / m(target, p), and the share of the target's excess over the retrain model
# that remains, (m(model, p) - m(retrain, p)) / (m(target, p) - m(retrain, p)), whose floor is the retrain model.
VIEWS = ("ratio", "excess")
# The precision stacks the contrast compares every other one with: those with fp32 master weights.
CONTRAST_REFERENCES = ("fp32", "mixed")


def summarize(metric_files: list[str], rows: list[dict], records: list[tuple[str, dict]], auc_retrain: dict,
              mechanism: list[tuple[str, dict]] = (), margin: float = confidence.MARGIN) -> tuple[pd.DataFrame, dict]:
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
    table["diverged"] = _diverged(table, records)
    table["privleak"] = [privleak(auc, _reference_auc(table, corpus, seed, auc_retrain))
                         for corpus, seed, auc in zip(table["corpus"], table["target_seed"], table["privleak_auc"])]
    resampled = resampled_metrics(table, items)
    table = add_intervals(add_views(table), resampled)
    table, samples = add_paired_changes(table, resampled, margin)
    return add_mechanism(table, mechanism), samples


def _diverged(table: pd.DataFrame, records: list[tuple[str, dict]]) -> list[bool]:
    diverged = {(row["corpus"], row["target_seed"], row["model"]) for path, row in records if read_json(path)["diverged"]}
    return [key in diverged for key in zip(table["corpus"], table["target_seed"], table["model"])]


def resampled_metrics(table: pd.DataFrame, items: list[dict]) -> list[dict[str, np.ndarray]]:
    """Per row, each item metric's mean under every bootstrap resample of its corpus' items (the same draws for
    every target and model of the corpus)."""
    first_row = {}
    for i, corpus in enumerate(table["corpus"]):
        first_row.setdefault(corpus, i)
    draws = {corpus: confidence.Draws.for_corpus(corpus, {m: len(items[i][m]) for m in ITEM_METRICS})
             for corpus, i in first_row.items()}
    return [{m: confidence.resampled_means(row_items[m], draws[corpus].by_metric[m]) for m in ITEM_METRICS}
            for corpus, row_items in zip(table["corpus"], items, strict=True)]


def add_intervals(table: pd.DataFrame, resampled: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """`<metric>_lo`, `<metric>_hi`: the 95% bootstrap interval of each item metric."""
    for metric in ITEM_METRICS:
        bounds = [confidence.interval(row[metric]) for row in resampled]
        table[f"{metric}_lo"], table[f"{metric}_hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return table


def _reference_rows(table: pd.DataFrame, role: str) -> np.ndarray:
    """For every row, the position of its own target's (or retrain model's) row at the same format."""
    keys = ["corpus", "target_seed", *FORMAT_KEYS]
    position = {key: i for i, key in enumerate(zip(*(table[k] for k in ROW_KEYS)))}
    return np.array([position.get((*key[:2], role, *key[2:]), -1) for key in zip(*(table[k] for k in keys))])


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
    for i, row in enumerate(table[ROW_KEYS].to_dict("records")):
        if row["model"] in ("target", "retrain") or (row["quantizer"] == "none" and not row["attack"]):
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
            low, high = confidence.interval(change)
            for name, value in zip(("vs_full", "vs_full_lo", "vs_full_hi", "verdict"),
                                   (point, low, high, confidence.verdict(point, low, high, margin))):
                columns[f"{view}_{name}"].append(value)
    return table.assign(**columns).rename(columns={"ratio_verdict": "verdict"}), samples


def unattacked(table: pd.DataFrame) -> pd.DataFrame:
    """Every row but the attacked models' (attacks.csv holds what the attacks did)."""
    return table[table["attack"] == ""]


def unlearned_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The unlearned models' rows, the grid's and the audited ones."""
    return table[~table["model"].isin(["target", "retrain"])]


def read_summary(path: str | Path) -> pd.DataFrame:
    """results/summary.csv as `summarize` made it: text columns that may be empty stay text."""
    table = pd.read_csv(path)
    return table.assign(**{c: table[c].fillna("").astype(str) for c in ("method", "unlearn_precision", "attack")})


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


def _reference_auc(table: pd.DataFrame, corpus: str, target_seed: int, auc_retrain: dict) -> float:
    """The configured AUC (real MUSE), else the full-precision AUC of the retrain model of the same target seed."""
    if auc_retrain.get(corpus) is not None:
        return auc_retrain[corpus]
    row = table[(table["corpus"] == corpus) & (table["target_seed"] == target_seed) & (table["model"] == "retrain")
                & (table["quantizer"] == "none") & (table["attack"] == "")]
    return float(row["privleak_auc"].iloc[0])


HEADLINE_KEYS = ["unlearn_precision", "sure", *QUANTIZATION_KEYS]
CHANGE_COLUMNS = [f"{prefix}{suffix}" for prefix in ("vs_full", "excess_vs_full") for suffix in ("", "_lo", "_hi")]
HEADLINE_COLUMNS = ["corpus", *HEADLINE_KEYS, "mean_recovery_ratio", "mean_excess", "values", "targets",
                    *CHANGE_COLUMNS, "verdict", "excess_verdict", "targets_agree", "target_verdicts",
                    "excess_targets_agree", "excess_target_verdicts"]
CONTRAST_COLUMNS = ["corpus", "sure", *QUANTIZATION_KEYS, "unlearn_precision", "reference", "contrast", "contrast_lo",
                    "contrast_hi", "verdict", "targets", "targets_above"]


def _headline_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The grid's utility-constrained, non-diverged unlearned rows (audited models have their own `verdicts`), not
    attacked (attacks.csv has those)."""
    table = unattacked(table)
    base_method = table["method"].str.removesuffix(SURE_SUFFIX)
    rows = table[base_method.isin(CONSTRAINED_METHODS) & ~table["diverged"] & ~table["audited"]]
    return rows.assign(sure=rows["method"].str.endswith(SURE_SUFFIX))


def _view_means(rows: pd.DataFrame, view: str, keys: list[str]) -> pd.Series:
    """The mean of a view over both forget metrics and every row of each group."""
    long = rows.melt(id_vars=keys, value_vars=[f"{m}_{view}" for m in FORGET_METRICS], value_name="value")
    return long.groupby(keys, sort=False, dropna=False)["value"].mean()


def headline(table: pd.DataFrame, samples: dict | None = None, margin: float = confidence.MARGIN) -> pd.DataFrame:
    """The paper's headline ("21% at full precision, 83% after 4-bit"): per corpus (and `all` corpora), precision
    stack while unlearning, SURE or not, and format, the mean recovery ratio over the utility-constrained methods,
    learning rates, targets, unlearning seeds and both forget metrics of the grid; `vs_full` is its change from full
    precision (the same rows unquantized), the size of the recovery; `mean_excess` and `excess_vs_full` the same
    in the excess view. Given `samples` (from `summarize`), each change gets its hierarchical bootstrap interval
    (targets, then unlearning seeds within each target, then items), a verdict, and how many targets agree."""
    rows = _headline_rows(table)
    if rows.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    keys = ["corpus", *HEADLINE_KEYS]
    means = pd.concat([_group_means(rows, keys), _group_means(rows, HEADLINE_KEYS).assign(corpus="all")],
                      ignore_index=True)
    if samples is None:
        return means
    by_target = headline_by_target(table, samples, margin)
    for view, prefix in zip(VIEWS, ("vs_full", "excess_vs_full")):
        changes = _hierarchical_changes(rows[rows["quantizer"] != "none"], samples, view)
        means = _with_verdicts(means, changes, prefix, margin)
        means = means.merge(_agreement(by_target, means, prefix), on=["corpus", *HEADLINE_KEYS], how="left")
    return means[HEADLINE_COLUMNS]


def _group_means(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: both views' means, their change from full precision, the number of values and of targets."""
    grouped = rows.assign(target=list(zip(rows["corpus"], rows["target_seed"]))).groupby(keys, sort=False, dropna=False)
    means = pd.DataFrame({"mean_recovery_ratio": _view_means(rows, "ratio", keys),
                          "mean_excess": _view_means(rows, "excess", keys),
                          "values": grouped.size() * len(FORGET_METRICS), "targets": grouped["target"].nunique()})
    means = means.reset_index()
    group = [k for k in keys if k not in FORMAT_KEYS]
    for column, change in (("mean_recovery_ratio", "vs_full"), ("mean_excess", "excess_vs_full")):
        full = means[means["quantizer"] == "none"].set_index(group)[column]
        means[change] = means[column] - full.reindex(pd.MultiIndex.from_frame(means[group])).to_numpy()
    return means


def _hierarchical_changes(quantized: pd.DataFrame, samples: dict, view: str) -> dict:
    """Each group's change samples: per corpus, the mean over method × lr cells of the hierarchical mean over
    (resampled) targets and their (resampled) unlearning seeds; for `all`, the mean over corpora."""
    rng = np.random.default_rng(confidence.SEED)
    changes = {}
    for key, group in quantized.groupby(["corpus", *HEADLINE_KEYS], sort=False, dropna=False):
        changes[key] = np.mean([confidence.hierarchical_mean(_by_target(cell, samples, view), rng)
                                for _, cell in group.groupby(["method", "lr"], sort=False)], axis=0)
    for key in {k[1:] for k in changes}:
        changes[("all", *key)] = np.mean([v for k, v in changes.items() if k[1:] == key and k[0] != "all"], axis=0)
    return changes


def _by_target(cell: pd.DataFrame, samples: dict, view: str) -> list[np.ndarray]:
    """One cell's change samples as [targets][seeds, RESAMPLES]."""
    return [np.stack([samples[tuple(r)][view] for r in rows[ROW_KEYS].itertuples(index=False)])
            for _, rows in cell.groupby("target_seed", sort=True)]


def _with_verdicts(means: pd.DataFrame, changes: dict, prefix: str, margin: float) -> pd.DataFrame:
    """`{prefix}_lo`, `{prefix}_hi` and the verdict of each quantized group (full precision: 0, no verdict)."""
    keys = zip(*(means[k] for k in ["corpus", *HEADLINE_KEYS]))
    bounds = [confidence.interval(changes[key]) if key in changes else (change, change)
              for key, change in zip(keys, means[prefix])]
    verdicts = [confidence.verdict(change, *b, margin) if quantizer != "none" else ""
                for change, b, quantizer in zip(means[prefix], bounds, means["quantizer"])]
    return means.assign(**{f"{prefix}_lo": [b[0] for b in bounds], f"{prefix}_hi": [b[1] for b in bounds],
                           _verdict_column(prefix): verdicts})


def _verdict_column(prefix: str) -> str:
    return "verdict" if prefix == "vs_full" else "excess_verdict"


def headline_by_target(table: pd.DataFrame, samples: dict, margin: float = confidence.MARGIN) -> pd.DataFrame:
    """The headline per target: per corpus, target seed, stack, SURE and format, both views' changes from full
    precision with intervals over that target's unlearning seeds and the items, and their verdicts."""
    rows = _headline_rows(table)
    parts = []
    for seed, target_rows in rows.groupby("target_seed", sort=True):
        means = _group_means(target_rows, ["corpus", *HEADLINE_KEYS])
        for view, prefix in zip(VIEWS, ("vs_full", "excess_vs_full")):
            means = _with_verdicts(means, _hierarchical_changes(target_rows[target_rows["quantizer"] != "none"],
                                                                samples, view), prefix, margin)
        parts.append(means.assign(target_seed=seed))
    columns = ["corpus", "target_seed", *(c for c in HEADLINE_COLUMNS if c != "corpus" and "target" not in c)]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _agreement(by_target: pd.DataFrame, means: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per headline group, the targets' own verdicts: how many reach the pooled verdict (`targets_agree`) and how
    many reach each verdict (`target_verdicts`, e.g. "recovered 2, kept 1"); `excess_` versions for the excess
    view; none at full precision."""
    column, keys = _verdict_column(prefix), ["corpus", *HEADLINE_KEYS]
    names = ("targets_agree", "target_verdicts") if prefix == "vs_full" else ("excess_targets_agree",
                                                                            "excess_target_verdicts")
    pooled = means[[*keys, column]].rename(columns={column: "pooled"})
    mine = by_target[[*keys, "target_seed", column]]
    overall = mine.drop(columns="corpus").merge(pooled[pooled["corpus"] == "all"], on=HEADLINE_KEYS)
    matched = pd.concat([mine.merge(pooled, on=keys), overall], ignore_index=True)
    matched["agree"] = matched[column] == matched["pooled"]
    grouped = matched.groupby(keys, sort=False, dropna=False)
    counts = pd.DataFrame({names[0]: grouped["agree"].sum(), names[1]: grouped[column].agg(
        lambda verdicts: ", ".join(f"{v} {n}" for v, n in Counter(verdicts).most_common()))}).reset_index()
    result = means[keys].merge(counts, on=keys, how="left")
    result.loc[means["quantizer"].to_numpy() == "none", list(names)] = None
    return result


def contrast(table: pd.DataFrame, samples: dict) -> pd.DataFrame:
    """qunlearn's own claim, tested: per corpus (and `all`), SURE or not, format, precision stack and reference stack
    (fp32 and mixed, which keep fp32 master weights), the change of the recovery ratio under the stack minus the
    change under the reference, paired by method, lr, target and unlearning seed, with a hierarchical interval
    (targets, seeds within them, items) and `higher` (the interval lies above 0: the stack recovers more than the
    reference), `lower` (below 0) or `unclear`; `targets_above` counts the targets whose own difference is above 0."""
    rows = _headline_rows(table)
    rows = rows[rows["quantizer"] != "none"]
    if rows.empty:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    rows = rows.assign(change=[samples[key]["ratio"] for key in zip(*(rows[k] for k in ROW_KEYS))])
    keys, pairs = ["corpus", "sure", *QUANTIZATION_KEYS], ["method", "lr", "target_seed", "seed"]
    references = [r for r in CONTRAST_REFERENCES if r in set(rows["unlearn_precision"])]
    rng = np.random.default_rng(confidence.SEED)
    found = {}
    for key, group in rows.groupby(keys, sort=False, dropna=False):
        by_stack = {stack: part.set_index(pairs) for stack, part in group.groupby("unlearn_precision", sort=False)}
        for reference in references:
            for stack, part in by_stack.items():
                matched = part.join(by_stack.get(reference, part.iloc[:0]), how="inner", suffixes=("", "_ref"))
                if stack != reference and not matched.empty:
                    found[(key, stack, reference)] = _contrast_samples(matched, rng)
    results = [_contrast_row(dict(zip(keys, key)), stack, reference, *values)
               for (key, stack, reference), values in found.items()]
    for rest, stack, reference in dict.fromkeys((k[1:], s, r) for k, s, r in found):
        same = [v for (k, s, r), v in found.items() if (k[1:], s, r) == (rest, stack, reference)]
        results.append(_contrast_row(dict(zip(keys, ("all", *rest))), stack, reference, np.mean([v[0] for v in same]),
                                     np.concatenate([v[1] for v in same]), np.mean([v[2] for v in same], axis=0)))
    return pd.DataFrame(results, columns=CONTRAST_COLUMNS)


def _contrast_samples(matched: pd.DataFrame, rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    """Of one group's stack-against-reference pairs: the point difference (the mean over method × lr cells of the
    mean over targets and seeds), each target's own point difference, and the hierarchical bootstrap samples."""
    matched = matched.assign(difference=matched["ratio_vs_full"] - matched["ratio_vs_full_ref"],
                             samples=[a - b for a, b in zip(matched["change"], matched["change_ref"])])
    cells = [confidence.hierarchical_mean([np.stack(rows["samples"].to_list())
                                           for _, rows in cell.groupby(level="target_seed", sort=True)], rng)
             for _, cell in matched.groupby(level=["method", "lr"], sort=False)]
    point = matched.groupby(level=["method", "lr"], sort=False)["difference"].mean().mean()
    per_target = matched.groupby(level="target_seed")["difference"].mean().to_numpy()
    return float(point), per_target, np.mean(cells, axis=0)


def _contrast_row(key: dict, stack: str, reference: str, point: float, per_target: np.ndarray,
                  change: np.ndarray) -> dict:
    low, high = confidence.interval(change)
    direction = "undefined" if np.isnan(low) else "higher" if low > 0 else "lower" if high < 0 else "unclear"
    return {**key, "unlearn_precision": stack, "reference": reference, "contrast": point, "contrast_lo": low,
            "contrast_hi": high, "verdict": direction, "targets": len(per_target),
            "targets_above": int((per_target > 0).sum())}


def format_table(table: pd.DataFrame, headline_table: pd.DataFrame, contrast_table: pd.DataFrame) -> str:
    """The text printed at the end of a run: every row, then the answer (last, where a terminal shows it)."""
    number = lambda x: f"{x:.2f}"  # noqa: E731
    attacked = ["attack"] if (table["attack"] != "").any() else []
    columns = ["corpus", "target_seed", "model", "quantizer", "bits", *attacked, *METRICS,
               *(f"{m}_ratio" for m in FORGET_METRICS)]
    text = [table[columns].to_string(index=False, float_format=number), ""]
    audited = verdicts(table[table["audited"]])
    if not audited.empty:
        columns = ["corpus", "target_seed", "model", "quantizer", "bits", "ratio_vs_full", "ratio_vs_full_lo",
                   "ratio_vs_full_hi", "verdict"]
        text += ["Audited models: change of the recovery ratio from full precision, 95% interval, verdict:",
                 audited[columns].to_string(index=False, float_format=lambda x: f"{x:+.2f}"), ""]
    if not headline_table.empty:
        quantized = headline_table[headline_table["quantizer"] != "none"]
        columns = ["corpus", "unlearn_precision", "sure", "quantizer", "bits", "mean_recovery_ratio", "vs_full",
                   "vs_full_lo", "vs_full_hi", "verdict", "targets", "targets_agree"]
        text += ["Does forgetting come back? Change of the mean recovery ratio from full precision (utility-constrained "
                 "methods), 95% interval over targets, seeds and items, verdict, and how many targets agree:",
                 quantized[[c for c in columns if c in quantized]].to_string(index=False, float_format=number), ""]
    if not contrast_table.empty:
        columns = ["corpus", "sure", "quantizer", "bits", "unlearn_precision", "reference", "contrast", "contrast_lo",
                   "contrast_hi", "verdict", "targets", "targets_above"]
        text += ["Does a stack recover more than one with fp32 master weights? Its change minus the reference's:",
                 contrast_table[columns].to_string(index=False, float_format=number), ""]
    return "\n".join(text)


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric value (tidy data for plotting): the key columns, `metric` and `value`."""
    values = [*METRICS, "privleak_auc", *(f"{m}_{view}" for view in VIEWS for m in FORGET_METRICS)]
    values += [c for c in table.columns
               if c in ("moved", "same_code", "moved_near_zero_code", "bf16_threshold_lr")
               or c.startswith(("below_", "surviving_"))]
    keys = [c for c in table.columns if c not in values]
    return table.melt(id_vars=keys, value_vars=values, var_name="metric", value_name="value").dropna(subset=["value"])


VERDICT_COLUMNS = ["corpus", "target_seed", "model", "audited", "method", "lr", "unlearn_precision", "seed",
                   "quantizer", "bits", "group_size", *FORGET_METRICS,
                   *(f"{m}_{view}" for view in VIEWS for m in FORGET_METRICS),
                   "ratio_vs_full", "ratio_vs_full_lo", "ratio_vs_full_hi", "verdict",
                   "excess_vs_full", "excess_vs_full_lo", "excess_vs_full_hi", "excess_verdict", "surviving_update"]


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per unlearned model (the grid's and the audited ones) × quantized format: its forget metrics and
    both views there, each view's change from full precision with its interval and verdict, and the share of the
    unlearning update that the format keeps."""
    rows = unlearned_rows(table)
    rows = rows[rows["quantizer"] != "none"]
    return rows[[c for c in VERDICT_COLUMNS if c in rows]]


def write_summary(table: pd.DataFrame, samples: dict, margin: float, paths: dict[str, str]) -> None:
    """paths: csv, long, text, headline, by_target, contrast, verdicts."""
    headline_table, contrast_table = headline(table, samples, margin), contrast(table, samples)
    write_text(paths["csv"], table.to_csv(index=False))
    write_text(paths["long"], long_form(table).to_csv(index=False))
    write_text(paths["headline"], headline_table.to_csv(index=False))
    write_text(paths["by_target"], headline_by_target(table, samples, margin).to_csv(index=False))
    write_text(paths["contrast"], contrast_table.to_csv(index=False))
    write_text(paths["verdicts"], verdicts(table).to_csv(index=False))
    write_text(paths["text"], format_table(table, headline_table, contrast_table))
