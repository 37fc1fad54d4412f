"""One table of every corpus × model × precision, with PrivLeak against the retrain model and recovery ratios."""

from pathlib import Path

import pandas as pd

from .io import read_json, write_text
from .metrics import privleak
from .grid import SURE_SUFFIX

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")
FORGET_METRICS = ("verbmem_f", "knowmem_f")
CONSTRAINED_METHODS = ("ga_gdr", "ga_klr", "npo_gdr", "npo_klr")  # those with a utility (retain) term


def summarize(metric_files: list[str], rows: list[dict], record_files: list[str], auc_retrain: dict,
              mechanism: list[tuple[str, dict]] = ()) -> pd.DataFrame:
    """rows[i] names the corpus, model, method, lr, quantizer, bits, group size and config hash of
    metric_files[i]; `mechanism` pairs each mechanism JSON with its row. Package versions come from the
    metrics files, as the evaluation recorded them."""
    records = []
    for path, row in zip(metric_files, rows, strict=True):
        result = read_json(path)
        packages = {f"{name}_version": version for name, version in result.get("packages", {}).items()}
        records.append({**row, **{k: result[k] for k in ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_auc")},
                        **packages})
    table = pd.DataFrame.from_records(records)
    table["diverged"] = False
    for path in map(Path, record_files):  # results/unlearned/{corpus}/{model}.json
        if read_json(path)["diverged"]:
            table.loc[(table["corpus"] == path.parent.name) & (table["model"] == path.stem), "diverged"] = True
    table["privleak"] = [
        privleak(auc, _reference_auc(table, corpus, auc_retrain)) for corpus, auc in zip(table["corpus"], table["privleak_auc"])
    ]
    return add_mechanism(add_recovery_ratios(table), mechanism)


def unlearned_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The unlearned models' rows: target and retrain have no method (empty, or NaN once read from CSV)."""
    return table[table["method"].fillna("") != ""]


def add_mechanism(table: pd.DataFrame, mechanism: list[tuple[str, dict]]) -> pd.DataFrame:
    """Columns from the mechanism JSON (all decoder-layer Linear weights): `moved`, the fraction of weights
    that unlearning moved; `same_code`, the fraction whose quantized value equals the target's; and
    `below_<t>_steps`, the fraction that moved by less than t of the target's quantization steps."""
    keys = ["corpus", "model", "quantizer", "bits", "group_size"]
    measured = pd.DataFrame([{**{k: row[k] for k in keys}, **read_json(path)["all"]} for path, row in mechanism])
    if measured.empty:
        return table
    return table.merge(measured, on=keys, how="left")


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


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's headline ("21% at full precision, 83% after 4-bit"): per precision, with and without SURE,
    the mean recovery ratio over the utility-constrained methods, every corpus and learning rate, and both
    forget metrics."""
    sure = table["method"].str.endswith(SURE_SUFFIX)
    base_method = table["method"].str.removesuffix(SURE_SUFFIX)
    rows = table[base_method.isin(CONSTRAINED_METHODS) & ~table["diverged"]].assign(sure=sure)
    ratios = rows.melt(id_vars=["sure", "quantizer", "bits"], value_vars=[f"{m}_ratio" for m in FORGET_METRICS],
                       value_name="ratio")
    grouped = ratios.groupby(["sure", "quantizer", "bits"], sort=False)["ratio"]
    return pd.DataFrame({"mean_recovery_ratio": grouped.mean(), "values": grouped.size()}).reset_index()


def format_table(table: pd.DataFrame) -> str:
    columns = ["corpus", "model", "quantizer", "bits", *METRICS, *(f"{m}_ratio" for m in FORGET_METRICS)]
    text = table[columns].to_string(index=False, float_format=lambda x: f"{x:.2f}")
    recovery = headline(table).to_string(index=False, float_format=lambda x: f"{x:.2f}")
    return f"{text}\n\nMean recovery ratio of the utility-constrained methods (forget metrics):\n{recovery}\n"


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric value (tidy data for plotting): the key columns, `metric` and `value`."""
    values = [*METRICS, "privleak_auc", *(f"{m}_ratio" for m in FORGET_METRICS)]
    values += [c for c in table.columns if c == "moved" or c == "same_code" or c.startswith("below_")]
    keys = [c for c in table.columns if c not in values]
    return table.melt(id_vars=keys, value_vars=values, var_name="metric", value_name="value").dropna(subset=["value"])


def write_summary(table: pd.DataFrame, csv_path: str, long_path: str, text_path: str, headline_path: str) -> None:
    write_text(csv_path, table.to_csv(index=False))
    write_text(long_path, long_form(table).to_csv(index=False))
    write_text(headline_path, headline(table).to_csv(index=False))
    write_text(text_path, format_table(table))
