import numpy as np
import pandas as pd
import pytest

from qunlearn import confidence
from qunlearn.io import write_json
from qunlearn.summary import headline, summarize


def test_the_interval_covers_a_known_mean_at_about_the_nominal_rate():
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        items = rng.exponential(scale=30.0, size=80)  # skewed, like ROUGE scores; the true mean is 30
        low, high = confidence.interval(confidence.resampled_means(items, confidence.item_draws(80, rng)))
        covered += low <= 30.0 <= high
    assert covered >= 90  # 95% nominal (93 here); the percentile bootstrap runs a little short on skewed data


def test_the_same_items_give_the_same_draws_and_intervals():
    first = confidence.Draws.for_corpus("toy-news", {"verbmem_f": 40, "knowmem_f": 80})
    again = confidence.Draws.for_corpus("toy-news", {"knowmem_f": 80, "verbmem_f": 40})
    other = confidence.Draws.for_corpus("toy-books", {"verbmem_f": 40, "knowmem_f": 80})
    assert all(np.array_equal(first.by_metric[m], again.by_metric[m]) for m in first.by_metric)
    assert not np.array_equal(first.by_metric["knowmem_f"], other.by_metric["knowmem_f"])


def test_verdicts():
    assert confidence.verdict(0.05, 0.3) == "recovered"
    assert confidence.verdict(-0.02, 0.05) == "kept"
    assert confidence.verdict(-0.1, 0.2) == "unclear"
    low, high = confidence.interval(np.array([np.inf, np.nan]))  # the target scored 0 in every resample
    assert np.isnan(low) and confidence.verdict(low, high) == "undefined"


def _write(tmp_path, name, items):
    scores = {m: float(np.mean(v)) for m, v in items.items()}
    write_json(tmp_path / f"{name}.json", {**scores, "privleak_auc": 0.5, "items": items})
    return str(tmp_path / f"{name}.json")


def _summary(tmp_path, unlearned_at_rtn):
    rng = np.random.default_rng(0)
    target = {m: list(rng.uniform(20, 80, 40)) for m in ("verbmem_f", "knowmem_f", "knowmem_r")}
    unlearned = {m: list(rng.uniform(0, 40, 40)) for m in target}
    files, rows = [], []
    for model, precision, items in [("target", "none", target), ("target", "rtn", target), ("retrain", "none", target),
                                    ("npo_gdr_lr3e-5_bf16_s0", "none", unlearned),
                                    ("npo_gdr_lr3e-5_bf16_s0", "rtn", unlearned_at_rtn(unlearned, target))]:
        files.append(_write(tmp_path, f"{model}-{precision}", items))
        unlearned_row = model.startswith("npo")
        rows.append(dict(corpus="news", model=model, audited=False, method="npo_gdr" if unlearned_row else "",
                         lr="3e-5" if unlearned_row else "", unlearn_precision="bf16" if unlearned_row else "",
                         seed=0 if unlearned_row else "", quantizer=precision, bits=32 if precision == "none" else 4,
                         group_size="" if precision == "none" else 64))
    return summarize(files, rows, [], {"news": None})


def test_a_model_paired_with_itself_changes_by_exactly_zero(tmp_path):
    table, samples = _summary(tmp_path, lambda unlearned, target: unlearned)
    row = table[table["quantizer"] == "rtn"].query("model != 'target'").iloc[0]
    assert (row["ratio_vs_full"], row["ratio_vs_full_lo"], row["ratio_vs_full_hi"]) == (0, 0, 0)
    assert row["verdict"] == "kept"
    result = headline(table, samples).query("quantizer == 'rtn'")
    assert (result[["vs_full", "vs_full_lo", "vs_full_hi"]].to_numpy() == 0).all() and set(result["corpus"]) == {"news", "all"}
    assert (table["verbmem_f_lo"] <= table["verbmem_f"]).all() and (table["verbmem_f"] <= table["verbmem_f_hi"]).all()


def test_a_model_that_returns_to_the_target_under_quantization_is_recovered(tmp_path):
    table, samples = _summary(tmp_path, lambda unlearned, target: target)
    row = table[table["quantizer"] == "rtn"].query("model != 'target'").iloc[0]
    assert row["ratio_vs_full_lo"] > 0.3 and row["verdict"] == "recovered"
    assert row["ratio_vs_full"] == pytest.approx(1 - np.mean([row_ for row_ in table.query(
        "model != 'target' and model != 'retrain' and quantizer == 'none'")[["verbmem_f_ratio", "knowmem_f_ratio"]].iloc[0]]))
    assert headline(table, samples).query("quantizer == 'rtn'")["verdict"].tolist() == ["recovered", "recovered"]
