"""One table of every corpus × model × precision, with PrivLeak against the retrain model and recovery ratios."""

from pathlib import Path

import numpy as np
import pandas as pd

from . import confidence
from .io import read_json, write_text
from .metrics import privleak
from .grid import SURE_SUFFIX

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")
ITEM_METRICS = ("verbmem_f", "knowmem_f", "knowmem_r")  # means over items, each with a bootstrap interval
FORGET_METRICS = ("verbmem_f", "knowmem_f")
CONSTRAINED_METHODS = ("ga_gdr", "ga_klr", "npo_gdr", "npo_klr")  # those with a utility (retain) term
ROW_KEYS = ["corpus", "model", "quantizer", "bits", "group_size"]


def summarize(metric_files: list[str], rows: list[dict], record_files: list[str], auc_retrain: dict,
              mechanism: list[tuple[str, dict]] = ()) -> tuple[pd.DataFrame, dict]:
    """rows[i] names the corpus, model, method, lr, quantizer, bits, group size and config hash of
    metric_files[i]; `mechanism` pairs each mechanism JSON with its row. Package versions come from the
    metrics files, as the evaluation recorded them. Returns the table and, per unlearned row under a format, the
    bootstrap samples of its recovery-ratio change from full precision (for `headline`)."""
    records, items = [], []
    for path, row in zip(metric_files, rows, strict=True):
        result = read_json(path)
        packages = {f"{name}_version": version for name, version in result.get("packages", {}).items()}
        records.append({**row, **{k: result[k] for k in ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_auc")},
                        **packages})
        items.append(result["items"])
    table = pd.DataFrame.from_records(records)
    table["diverged"] = False
    for path in map(Path, record_files):  # results/unlearned/{corpus}/{model}.json
        if read_json(path)["diverged"]:
            table.loc[(table["corpus"] == path.parent.name) & (table["model"] == path.stem), "diverged"] = True
    table["privleak"] = [
        privleak(auc, _reference_auc(table, corpus, auc_retrain)) for corpus, auc in zip(table["corpus"], table["privleak_auc"])
    ]
    resampled = resampled_metrics(table, items)
    table = add_intervals(add_recovery_ratios(table), resampled)
    table, samples = add_paired_recovery(table, resampled)
    return add_mechanism(table, mechanism), samples


def resampled_metrics(table: pd.DataFrame, items: list[dict]) -> list[dict[str, np.ndarray]]:
    """Per row, each item metric's mean under every bootstrap resample of its corpus' items."""
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


def add_paired_recovery(table: pd.DataFrame, resampled: list[dict[str, np.ndarray]]) -> tuple[pd.DataFrame, dict]:
    """For each unlearned model under a format: `ratio_vs_full`, the change of its recovery ratio (the mean over
    the forget metrics of metric(model, p) / metric(target, p)) from full precision, with a paired bootstrap
    interval (the same items for the model and the target at both precisions) and its `verdict`."""
    position = {key: i for i, key in enumerate(zip(*(table[k] for k in ROW_KEYS)))}

    def at(row: dict, **change) -> int:
        return position[tuple({**row, **change}[k] for k in ROW_KEYS)]

    full = dict(quantizer="none", bits=32, group_size="")
    samples, columns = {}, {"ratio_vs_full": [], "ratio_vs_full_lo": [], "ratio_vs_full_hi": [], "verdict": []}
    for i, row in enumerate(table[ROW_KEYS].to_dict("records")):
        if row["model"] in ("target", "retrain") or row["quantizer"] == "none":
            for values in columns.values():
                values.append(None)
            continue
        model, target = resampled[i], resampled[at(row, model="target")]
        model_full, target_full = resampled[at(row, **full)], resampled[at(row, **full, model="target")]
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.mean([model[m] / target[m] - model_full[m] / target_full[m] for m in FORGET_METRICS], axis=0)
        samples[tuple(row.values())] = change
        low, high = confidence.interval(change)
        point = np.mean([table[f"{m}_ratio"].iloc[i] - table[f"{m}_ratio"].iloc[at(row, **full)] for m in FORGET_METRICS])
        for name, value in zip(columns, (point, low, high, confidence.verdict(low, high))):
            columns[name].append(value)
    return table.assign(**columns), samples


def unlearned_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The unlearned models' rows, the grid's and the audited ones."""
    return table[~table["model"].isin(["target", "retrain"])]


def read_summary(path: str | Path) -> pd.DataFrame:
    """results/summary.csv as `summarize` made it: text columns that may be empty stay text."""
    table = pd.read_csv(path)
    return table.assign(**{c: table[c].fillna("").astype(str) for c in ("method", "unlearn_precision")})


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


def _reference_auc(table: pd.DataFrame, corpus: str, auc_retrain: dict) -> float:
    """The configured AUC (real MUSE), else the full-precision retrain model's own."""
    if auc_retrain.get(corpus) is not None:
        return auc_retrain[corpus]
    row = table[(table["corpus"] == corpus) & (table["model"] == "retrain") & (table["quantizer"] == "none")]
    return float(row["privleak_auc"].iloc[0])


def add_recovery_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """metric(model, precision) / metric(target, precision) for the forget metrics: the paper's headline figure."""
    keys = ["corpus", "quantizer", "bits"]
    target = table[table["model"] == "target"].set_index(keys)
    for metric in FORGET_METRICS:
        reference = target[metric].reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy()
        table[f"{metric}_ratio"] = table[metric].to_numpy() / reference
    return table


HEADLINE_KEYS = ["unlearn_precision", "sure", "quantizer", "bits"]


def headline(table: pd.DataFrame, samples: dict | None = None) -> pd.DataFrame:
    """The paper's headline ("21% at full precision, 83% after 4-bit"): per corpus (and `all` corpora), precision
    while unlearning, SURE or not, and format, the mean recovery ratio over the utility-constrained methods,
    learning rates, seeds and both forget metrics of the grid (audited models have their own rows in `verdicts`);
    `vs_full` is its change from full precision (the same rows unquantized), the size of the recovery. Given
    `samples` (from `summarize`), `vs_full` gets its bootstrap interval (`vs_full_lo`, `vs_full_hi`) and a
    `verdict`."""
    base_method = table["method"].str.removesuffix(SURE_SUFFIX)
    rows = table[base_method.isin(CONSTRAINED_METHODS) & ~table["diverged"] & ~table["audited"]]
    rows = rows.assign(sure=rows["method"].str.endswith(SURE_SUFFIX))
    ratios = rows.melt(id_vars=["corpus", *HEADLINE_KEYS], value_vars=[f"{m}_ratio" for m in FORGET_METRICS],
                       value_name="ratio")
    per_corpus = _mean_ratios(ratios, ["corpus", *HEADLINE_KEYS])
    overall = _mean_ratios(ratios, HEADLINE_KEYS).assign(corpus="all")
    means = pd.concat([per_corpus, overall], ignore_index=True)
    full = means[means["quantizer"] == "none"].set_index(["corpus", "unlearn_precision", "sure"])["mean_recovery_ratio"]
    at_full = full.reindex(pd.MultiIndex.from_frame(means[["corpus", "unlearn_precision", "sure"]])).to_numpy()
    means = means.assign(vs_full=means["mean_recovery_ratio"] - at_full)
    return means if samples is None else _headline_intervals(means, rows, samples)


def _headline_intervals(means: pd.DataFrame, rows: pd.DataFrame, samples: dict) -> pd.DataFrame:
    """Each group's change samples: per corpus, the mean over method × lr cells of the mean over (resampled)
    seeds; for `all`, the mean over corpora."""
    rng = np.random.default_rng(confidence.SEED)
    quantized = rows[rows["quantizer"] != "none"]
    by_corpus = {}
    for key, group in quantized.groupby(["corpus", *HEADLINE_KEYS], sort=False):
        cells = [confidence.mean_over_seeds(np.stack([samples[tuple(r)] for r in cell[ROW_KEYS].itertuples(index=False)]),
                                            rng) for _, cell in group.groupby(["method", "lr"], sort=False)]
        by_corpus[key] = np.mean(cells, axis=0)
    for key in {k[1:] for k in by_corpus}:
        by_corpus[("all", *key)] = np.mean([v for k, v in by_corpus.items() if k[1:] == key and k[0] != "all"], axis=0)
    bounds = [confidence.interval(by_corpus[key]) if key in by_corpus else (full_change, full_change)  # full: 0
              for key, full_change in zip(zip(*(means[k] for k in ["corpus", *HEADLINE_KEYS])), means["vs_full"])]
    return means.assign(vs_full_lo=[b[0] for b in bounds], vs_full_hi=[b[1] for b in bounds],
                        verdict=[confidence.verdict(*b) if q != "none" else "" for b, q in zip(bounds, means["quantizer"])])


def _mean_ratios(ratios: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = ratios.groupby(keys, sort=False)["ratio"]
    return pd.DataFrame({"mean_recovery_ratio": grouped.mean(), "values": grouped.size()}).reset_index()


def format_table(table: pd.DataFrame) -> str:
    columns = ["corpus", "model", "quantizer", "bits", *METRICS, *(f"{m}_ratio" for m in FORGET_METRICS)]
    text = table[columns].to_string(index=False, float_format=lambda x: f"{x:.2f}")
    recovery = headline(table).to_string(index=False, float_format=lambda x: f"{x:.2f}")
    text = f"{text}\n\nMean recovery ratio of the utility-constrained methods (forget metrics):\n{recovery}\n"
    audited = verdicts(table[table["audited"]])
    if audited.empty:
        return text
    columns = ["corpus", "model", "quantizer", "bits", "ratio_vs_full", "ratio_vs_full_lo", "ratio_vs_full_hi", "verdict"]
    return f"{text}\nAudited models: change of the recovery ratio from full precision, 95% interval, verdict:\n" \
           f"{audited[columns].to_string(index=False, float_format=lambda x: f'{x:+.2f}')}\n"


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric value (tidy data for plotting): the key columns, `metric` and `value`."""
    values = [*METRICS, "privleak_auc", *(f"{m}_ratio" for m in FORGET_METRICS)]
    values += [c for c in table.columns
               if c in ("moved", "same_code", "moved_near_zero_code", "bf16_threshold_lr")
               or c.startswith(("below_", "surviving_"))]
    keys = [c for c in table.columns if c not in values]
    return table.melt(id_vars=keys, value_vars=values, var_name="metric", value_name="value").dropna(subset=["value"])


VERDICT_COLUMNS = ["corpus", "model", "audited", "method", "lr", "unlearn_precision", "seed", "quantizer", "bits",
                   "group_size", *FORGET_METRICS, *(f"{m}_ratio" for m in FORGET_METRICS), "ratio_vs_full",
                   "ratio_vs_full_lo", "ratio_vs_full_hi", "verdict", "surviving_update"]


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per unlearned model (the grid's and the audited ones) × quantized format: its forget metrics and
    recovery ratios there, the ratio's change from full precision with its interval, the verdict, and the share
    of the unlearning update that the format keeps."""
    rows = unlearned_rows(table)
    rows = rows[rows["quantizer"] != "none"]
    return rows[[c for c in VERDICT_COLUMNS if c in rows]]


def write_summary(table: pd.DataFrame, samples: dict, csv_path: str, long_path: str, text_path: str,
                  headline_path: str, verdicts_path: str) -> None:
    write_text(csv_path, table.to_csv(index=False))
    write_text(long_path, long_form(table).to_csv(index=False))
    write_text(headline_path, headline(table, samples).to_csv(index=False))
    write_text(verdicts_path, verdicts(table).to_csv(index=False))
    write_text(text_path, format_table(table))
