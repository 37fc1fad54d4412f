"""The paper's claims on hand-made metrics files: each claim's verdict reaches `reproduced` when every target shows
it, `not reproduced` when none does, and `unclear` when two targets disagree; the paper's figures from resources/."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qunlearn.analysis.claims import CLAIMS, claims, paper_changes, tension_points
from qunlearn.analysis.privleak import mink_scores
from qunlearn.analysis.summary import ITEM_METRICS, summarize
from qunlearn.io import write_json
from qunlearn.report.tables import claims_table, read_paper

FORMATS = [("full", "none", 32, ""), ("rtn-w4g64", "rtn", 4, 64), ("rtn-w8g64", "rtn", 8, 64)]
MODELS = [("npo_gdr", "3e-5"), ("npo_gdr", "1e-4"), ("npo_gdr_sure", "1e-4"), ("npo", "3e-5")]
PAPER = read_paper(Path(__file__).resolve().parents[1] / "resources/paper_muse_news.csv")
ITEMS = 40


def _items(rng, low, high):
    return {m: list(rng.uniform(low, high, ITEMS)) for m in ITEM_METRICS}


def _summarized(tmp_path, back_to_target, collapsed=lambda target_seed: False, targets=(0, 1)):
    """Two targets, each with its retrain model and MODELS under bf16; back_to_target(target_seed, method, lr,
    format) says whether that unlearned model's forget items at that format are its target's (the forgetting came
    back) or its own full-precision ones; `collapsed(target_seed)`: NPO's KnowMem-retain near 0 at every format.
    Returns `summarize`'s table and samples."""
    rng, files, rows = np.random.default_rng(0), [], []

    def add(target_seed, model, method, lr, items_at):
        for (format_id, quantizer, bits, group) in FORMATS:
            items = items_at(format_id)
            path = tmp_path / f"{target_seed}-{model}-{format_id}.json"
            write_json(path, {**{m: float(np.mean(v)) for m, v in items.items()}, "privleak_auc": 0.5, "items": items})
            files.append(str(path))
            rows.append(dict(corpus="news", rung=0, width=256, target_seed=target_seed, model=model, audited=False, method=method, lr=lr,
                             stack="bf16" if method else "", seed=0 if method else "", format=format_id,
                             quantizer=quantizer, bits=bits, group_size=group))

    for target_seed in targets:
        target, retrain = _items(rng, 40, 80), _items(rng, 0, 30)
        add(target_seed, "target", "", "", lambda f: target)
        add(target_seed, "retrain", "", "", lambda f: retrain)
        for method, lr in MODELS:
            own = {**_items(rng, 10, 50), "knowmem_r": target["knowmem_r"]}  # utility intact unless collapsed
            if method == "npo" and collapsed(target_seed):
                own["knowmem_r"] = list(rng.uniform(0, 5, ITEMS))
            def items_at(format_id, method=method, lr=lr, own=own, target=target, target_seed=target_seed):
                if format_id != "full" and back_to_target(target_seed, method, lr, format_id):
                    return {**own, "verbmem_f": target["verbmem_f"], "knowmem_f": target["knowmem_f"]}
                return own
            add(target_seed, f"{method}_lr{lr}_bf16_s0", method, lr, items_at)
    return summarize(files, rows, [], {"news": None})


def _claims(*args, **kwargs):
    return claims(*_summarized(*args, **kwargs), [3e-5], PAPER)


def _verdict(result, claim, format_id, method):
    row = result[(result["claim"] == claim) & (result["format"] == format_id) & (result["method"] == method)]
    assert len(row) == 1, result[["claim", "format", "method"]]
    return row.iloc[0]


# Per claim, the models and format that show it: (claim, format, method row, back_to_target for "every target
# shows the claim", for "none does"). A split study applies the first to target 0 and the second to target 1.
SCENARIOS = {
    "constrained_recover_4bit": ("rtn-w4g64", "npo_gdr", lambda m, lr, f: (m, lr, f) == ("npo_gdr", "3e-5", "rtn-w4g64"),
                                 lambda m, lr, f: False),
    "eight_bit_like_full": ("rtn-w8g64", "npo_gdr", lambda m, lr, f: False,
                            lambda m, lr, f: (m, f) == ("npo_gdr", "rtn-w8g64")),
    "sure_keeps_4bit": ("rtn-w4g64", "npo_gdr_sure", lambda m, lr, f: False,
                        lambda m, lr, f: m == "npo_gdr_sure" and f == "rtn-w4g64"),
    "sure_below_plain_4bit": ("rtn-w4g64", "npo_gdr_sure", lambda m, lr, f: m == "npo_gdr" and f == "rtn-w4g64",
                              lambda m, lr, f: False),
    "recovery_falls_with_lr": ("rtn-w4g64", "npo_gdr", lambda m, lr, f: (m, lr, f) == ("npo_gdr", "3e-5", "rtn-w4g64"),
                               lambda m, lr, f: False),
}


@pytest.mark.parametrize("claim", SCENARIOS)
def test_each_quantization_claim_reaches_each_of_its_verdicts(tmp_path, claim):
    format_id, method, shows, does_not = SCENARIOS[claim]
    outcomes = {}
    for name, rule in [("every", lambda t, m, lr, f: shows(m, lr, f)), ("none", lambda t, m, lr, f: does_not(m, lr, f)),
                       ("split", lambda t, m, lr, f: (shows if t == 0 else does_not)(m, lr, f))]:
        (tmp_path / name).mkdir()
        row = _verdict(_claims(tmp_path / name, rule), claim, format_id, method)
        outcomes[name] = (row["verdict"], row["targets_supporting"])
    assert outcomes == {"every": ("reproduced", 2), "none": ("not reproduced", 0), "split": ("unclear", 1)}


def test_the_collapse_claim_reads_retain_knowledge_against_the_target_s_at_every_format(tmp_path):
    outcomes = {}
    for name, collapsed in [("every", lambda t: True), ("none", lambda t: False), ("split", lambda t: t == 0)]:
        (tmp_path / name).mkdir()
        result = _claims(tmp_path / name, lambda *_: False, collapsed)
        rows = result[result["claim"] == "unconstrained_collapse"]
        assert set(rows["format"]) == {"full", "rtn-w4g64", "rtn-w8g64"} and set(rows["method"]) == {"npo"}
        outcomes[name] = set(zip(rows["verdict"], rows["targets_supporting"]))
    assert outcomes == {"every": {("reproduced", 2)}, "none": {("not reproduced", 0)}, "split": {("unclear", 1)}}


def test_the_method_claims_read_the_default_lr_and_the_lr_claim_names_where_recovery_stops(tmp_path):
    result = _claims(tmp_path, lambda t, m, lr, f: (m, lr, f) == ("npo_gdr", "3e-5", "rtn-w4g64"))
    recover = result[result["claim"] == "constrained_recover_4bit"]
    assert recover[["method", "lr"]].values.tolist() == [["npo_gdr", "3e-05"]]  # not npo_gdr at 1e-4, nor npo
    falls = _verdict(result, "recovery_falls_with_lr", "rtn-w4g64", "npo_gdr")
    assert falls["threshold_lr"] == pytest.approx(1e-4) and np.isnan(falls["predicted_threshold_lr"])
    assert falls["estimate"] < -0.3


def test_the_paper_s_changes_come_from_its_table():
    """NPO_GDR on MUSE NEWS: a recovery ratio of 0.36 at full precision and 0.96 at 4 bits (the issue's figures)."""
    four = paper_changes(PAPER, 4)
    assert set(four) == {"ga_gdr", "ga_klr", "npo_gdr"} and four["npo_gdr"] == pytest.approx(0.595, abs=0.005)
    assert set(paper_changes(PAPER, 8)) == {"ga_klr"}


@pytest.mark.parametrize("claim, estimate, low, high, expected", [
    ("constrained_recover_4bit", 0.3, 0.2, 0.4, "reproduced"), ("constrained_recover_4bit", 0.0, -0.05, 0.05,
                                                                  "not reproduced"),
    ("constrained_recover_4bit", 0.1, -0.05, 0.3, "unclear"),
    ("eight_bit_like_full", 0.0, -0.02, 0.01, "reproduced"), ("eight_bit_like_full", 0.3, 0.15, 0.4, "not reproduced"),
    ("eight_bit_like_full", 0.05, -0.02, 0.15, "unclear"),
    ("unconstrained_collapse", 0.9, 0.8, 0.95, "reproduced"), ("unconstrained_collapse", 0.1, 0.0, 0.2,
                                                                "not reproduced"),
    ("unconstrained_collapse", 0.5, 0.3, 0.7, "unclear"),
])
def test_the_rules_on_hand_picked_intervals(claim, estimate, low, high, expected):
    assert CLAIMS[claim].decide(estimate, low, high, 0.1) == expected


def test_the_tension_points_pair_each_model_s_utility_at_full_precision_with_its_change_at_4_bits(tmp_path):
    summary = _summarized(tmp_path, lambda t, m, lr, f: (m, lr, f) == ("npo_gdr", "3e-5", "rtn-w4g64"),
                          collapsed=lambda t: True)
    points = tension_points(*summary).set_index(["method", "lr", "sure"])
    assert len(points) == len(MODELS) and set(points["format"]) == {"rtn-w4g64"}  # 4-bit formats only
    recovering, npo = points.loc[("npo_gdr", 3e-5, False)], points.loc[("npo", 3e-5, False)]
    assert recovering["change_lo"] > 0.3 and recovering["utility_full"] == pytest.approx(1)
    assert npo["utility_full_hi"] < 0.2 and abs(npo["change"]) < 1e-12


def test_the_claims_table_lays_out_each_claim_by_stack():
    rows = pd.DataFrame([{"claim": "constrained_recover_4bit", "stack": "bf16", "format": "bnb-fp4-w4", "bits": 4,
                          "method": "npo_gdr", "lr": "3e-05", "paper": "+0.60", "estimate": 0.16, "low": 0.06,
                          "high": 0.28, "verdict": "reproduced", "targets": 3, "targets_supporting": 3}])
    tex = claims_table(rows)
    assert "+0.16 [+0.06, +0.28] reproduced (3/3)" in tex and "+0.60" in tex and "BNB-FP4 4-bit" in tex
    assert "No claim" in claims_table(rows.iloc[:0])


def test_the_min_k_scores_behind_privleak_are_listed_per_text_for_every_unattacked_model(tmp_path):
    rows, files = [], []
    for model, attack in [("target", ""), ("npo_gdr_lr3e-5_bf16_s0", ""), ("npo_gdr_lr3e-5_bf16_s0", "relearn")]:
        path = tmp_path / f"{model}-{attack}.json"
        write_json(path, {"mink": {"forget": {"0.4": [1.0, 2.0]}, "holdout": {"0.4": [3.0, 4.0, 5.0]}}})
        files.append(str(path))
        rows.append(dict(corpus="news", rung=0, width=256, target_seed=0, model=model, method="", lr="", stack="", format="full",
                         attack=attack))
    scores = mink_scores(files, rows, 0.4)
    assert len(scores) == 2 * 5 and set(scores["model"]) == {"target", "npo_gdr_lr3e-5_bf16_s0"}
    assert scores[scores["split"] == "holdout"]["score"].tolist() == [3.0, 4.0, 5.0] * 2


def test_a_grid_of_sure_methods_only_tests_only_the_sure_claim(tmp_path):
    """No plain method (the served-formats test's grid): the empty selections stay tables, not column lists."""
    table, samples = _summarized(tmp_path, lambda *_: False)
    sure_only = table[table["method"].isin(["", "npo_gdr_sure"])]
    assert set(claims(sure_only, samples, [3e-5], PAPER)["claim"]) == {"sure_keeps_4bit"}
