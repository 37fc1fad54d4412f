"""One table of every corpus × model × precision, with PrivLeak against the retrain model and recovery ratios."""

from pathlib import Path

import pandas as pd

from .io import read_json, write_text
from .metrics import privleak

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")
FORGET_METRICS = ("verbmem_f", "knowmem_f")
CONSTRAINED_METHODS = ("ga_gdr", "ga_klr", "npo_gdr", "npo_klr")  # those with a utility (retain) term


def summarize(metric_files: list[str], rows: list[dict], record_files: list[str], auc_retrain: dict,
              mechanism: list[tuple[str, dict]] = ()) -> pd.DataFrame:
    """rows[i] names the corpus, model, method, lr, quantizer, bits and group size of metric_files[i];
    `mechanism` pairs each same-code JSON with its corpus, model, quantizer and bits."""
    records = []
    for path, row in zip(metric_files, rows, strict=True):
        result = read_json(path)
        records.append({**row, **{k: result[k] for k in ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_auc")}})
    table = pd.DataFrame.from_records(records)
    table["diverged"] = False
    for path in map(Path, record_files):  # results/unlearned/{corpus}/{model}.json
        if read_json(path)["diverged"]:
            table.loc[(table["corpus"] == path.parent.name) & (table["model"] == path.stem), "diverged"] = True
    table["privleak"] = [
        privleak(auc, _reference_auc(table, corpus, auc_retrain)) for corpus, auc in zip(table["corpus"], table["privleak_auc"])
    ]
    return add_mechanism(add_recovery_ratios(table), mechanism)


def add_mechanism(table: pd.DataFrame, mechanism: list[tuple[str, dict]]) -> pd.DataFrame:
    """Columns `moved` and `same_code`: fractions of quantized weights that unlearning moved, and whose
    quantized value still equals the target's (all decoder-layer Linear weights)."""
    keys = ["corpus", "model", "quantizer", "bits"]
    measured = pd.DataFrame([{**row, **read_json(path)["all"]} for path, row in mechanism], columns=[*keys, "moved", "same_code"])
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
    """The paper's headline ("21% at full precision, 83% after 4-bit"): per precision, the mean recovery
    ratio over the utility-constrained methods, every corpus and learning rate, and both forget metrics."""
    rows = table[table["method"].isin(CONSTRAINED_METHODS) & ~table["diverged"]]
    ratios = rows.melt(id_vars=["quantizer", "bits"], value_vars=[f"{m}_ratio" for m in FORGET_METRICS], value_name="ratio")
    grouped = ratios.groupby(["quantizer", "bits"], sort=False)["ratio"]
    return pd.DataFrame({"mean_recovery_ratio": grouped.mean(), "values": grouped.size()}).reset_index()


def format_table(table: pd.DataFrame) -> str:
    columns = ["corpus", "model", "quantizer", "bits", *METRICS, *(f"{m}_ratio" for m in FORGET_METRICS)]
    text = table[columns].to_string(index=False, float_format=lambda x: f"{x:.2f}")
    recovery = headline(table).to_string(index=False, float_format=lambda x: f"{x:.2f}")
    return f"{text}\n\nMean recovery ratio of the utility-constrained methods (forget metrics):\n{recovery}\n"


def write_summary(table: pd.DataFrame, csv_path: str, text_path: str, headline_path: str) -> None:
    write_text(csv_path, table.to_csv(index=False))
    write_text(headline_path, headline(table).to_csv(index=False))
    write_text(text_path, format_table(table))
