"""Why PrivLeak does or does not move: the Min-K% scores behind it, per text, for every model and format."""

import pandas as pd

from qunlearn.io import read_json

SCORE_COLUMNS = ["corpus", "target_seed", "model", "method", "lr", "stack", "format", "split", "score"]


def mink_scores(metric_files: list[str], rows: list[dict], k: float) -> pd.DataFrame:
    """One row per model × format × text of the PrivLeak splits (forget, holdout): its Min-K% score at fraction k
    as the evaluation stored it (higher: the model finds the text less likely). PrivLeak is −100 where every
    holdout text scores above every forget text, as for a model that never forgot."""
    found = []
    for path, row in zip(metric_files, rows, strict=True):
        if row.get("attack"):
            continue
        stored = read_json(path)["mink"]
        for split in ("forget", "holdout"):
            found += [{**{c: row[c] for c in SCORE_COLUMNS[:-2]}, "split": split, "score": score}
                      for score in stored[split][str(k)]]
    return pd.DataFrame(found, columns=SCORE_COLUMNS)
