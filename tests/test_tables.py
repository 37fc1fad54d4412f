from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qunlearn.analysis.claims import TENSION_COLUMNS
from qunlearn.analysis.privleak import SCORE_COLUMNS
from qunlearn.analysis.summary import ROW_KEYS, contrast, headline, headline_by_target
from qunlearn.registry import FIGURES
from qunlearn.report.figures import draw_all
from qunlearn.report.tables import (contrast_table, main_table, model_label, paper_comparison, paper_table,
                                    per_model_ratios_table, read_paper, recovery_table)

PAPER = Path(__file__).resolve().parents[1] / "resources/paper_muse_news.csv"

FORMATS = {"none": 32, "rtn": 4}


def _summary():
    rows = [
        # model, target seed, method, lr, stack, quantizer, verbmem_f, knowmem_f, knowmem_r, privleak
        ("target", 0, "", "", "", "none", 50.0, 40.0, 30.0, -100.0),
        ("target", 0, "", "", "", "rtn", 45.0, 38.0, 29.0, -100.0),
        ("retrain", 0, "", "", "", "none", 20.0, 10.0, 31.0, 0.0),
        ("retrain", 0, "", "", "", "rtn", 21.0, 10.0, 30.0, 1.0),
        ("ga_klr_lr1e-4_bf16_s0", 0, "ga_klr", "1e-4", "bf16", "none", 10.0, 12.0, 20.0, -40.0),
        ("ga_klr_lr1e-4_bf16_s0", 0, "ga_klr", "1e-4", "bf16", "rtn", 30.0, 20.0, 25.0, -90.0),
        ("ga_klr_lr1e-4_fp32_s0", 0, "ga_klr", "1e-4", "fp32", "none", 11.0, 12.0, 20.0, -40.0),
        ("ga_klr_lr1e-4_fp32_s0", 0, "ga_klr", "1e-4", "fp32", "rtn", 12.0, 12.0, 20.0, -45.0),
        ("ga_klr_sure_lr1e-4_bf16_s0", 0, "ga_klr_sure", "1e-4", "bf16", "none", 15.0, 11.0, 27.0, 5.0),
        ("ga_klr_sure_lr1e-4_bf16_s0", 0, "ga_klr_sure", "1e-4", "bf16", "rtn", 16.0, 12.0, 26.0, 8.0),
        ("my-npo", 0, "", "", "", "none", 12.0, 14.0, 26.0, -50.0),  # audited: given by path, no method or lr
        ("my-npo", 0, "", "", "", "rtn", 40.0, 30.0, 26.0, -95.0),
    ]
    table = pd.DataFrame(rows, columns=["model", "target_seed", "method", "lr", "stack", "quantizer",
                                        "verbmem_f", "knowmem_f", "knowmem_r", "privleak"])
    table = table.assign(corpus="toy-news", rung=0, width=256, diverged=False, audited=table["model"] == "my-npo", attack="",
                         bits=table["quantizer"].map(FORMATS), group_size=[64 if q == "rtn" else "" for q in table["quantizer"]],
                         format=table["quantizer"].map({"none": "full", "rtn": "rtn-w4g64"}),
                         seed=["" if m == "" else 0 for m in table["method"]])
    unlearned_rtn = (table["quantizer"] == "rtn") & ~table["model"].isin(["target", "retrain"])
    table["same_code"] = np.where(unlearned_rtn, 0.97, np.nan)
    table["surviving_update"] = np.where(unlearned_rtn, 0.4, np.nan)
    table["bf16_threshold_lr"] = np.where(unlearned_rtn, 2e-5, np.nan)
    by_format = table.set_index(["model", "quantizer"])
    for metric in ("verbmem_f", "knowmem_f"):
        target = table["quantizer"].map(by_format.loc["target", metric])
        retrain = table["quantizer"].map(by_format.loc["retrain", metric])
        table[f"{metric}_ratio"] = table[metric] / target
        table[f"{metric}_excess"] = (table[metric] - retrain) / (target - retrain)
    table["utility"] = table["knowmem_r"] / table["quantizer"].map(by_format.loc["target", "knowmem_r"])
    full = table[table["quantizer"] == "none"].set_index("model")
    for view in ("ratio", "excess"):
        columns = [f"verbmem_f_{view}", f"knowmem_f_{view}"]
        table[f"{view}_vs_full"] = np.where(unlearned_rtn, table[columns].mean(axis=1) - table["model"].map(
            full[columns].mean(axis=1)), np.nan)
    return table


def _samples(table):
    """Bootstrap samples as `summarize` returns them: here each row's change, exactly (no noise)."""
    rows = table[table["ratio_vs_full"].notna()]
    return {tuple(r[k] for k in ROW_KEYS): {"ratio": np.full(2000, r["ratio_vs_full"]), "excess": np.full(2000, 0.1)}
            for r in rows.to_dict("records")}


def test_main_table_is_booktabs_with_the_best_unlearned_value_in_bold():
    tex = main_table(_summary())
    assert "\\toprule" in tex and "\\bottomrule" in tex and "toy-news" in tex
    assert "\\textbf{10.0}" in tex  # lowest VerbMem-forget among unlearned models (not the retrain's 20.0)
    assert "\\textbf{5.0}" in tex  # PrivLeak nearest 0
    assert "\\textbf{27.0}" in tex  # highest utility
    assert "\\textbf{50.0}" not in tex and "\\textbf{31.0}" not in tex  # target and retrain are not candidates
    assert "Target t0" in tex and "GA-KLR (1e-4, bf16, t0, seed 0)" in tex


def test_main_table_cells_carry_half_their_bootstrap_interval():
    summary = _summary()
    summary["verbmem_f_lo"], summary["verbmem_f_hi"] = summary["verbmem_f"] - 2.0, summary["verbmem_f"] + 3.0
    tex = main_table(summary)
    assert "\\textbf{10.0 $\\pm$ 2.5}" in tex and "50.0 $\\pm$ 2.5" in tex
    assert "$\\pm$" not in main_table(_summary())  # no intervals in the summary, none in the table


def test_recovery_table_has_each_stacks_change_interval_verdict_and_agreeing_targets():
    summary = _summary()
    tex = recovery_table(headline(summary, _samples(summary)))
    assert "SURE" in tex and "bf16" in tex and "fp32" in tex and "RTN 4-bit g64" in tex
    # GA_KLR bf16 at RTN 4-bit: (30/45 + 20/38) / 2 - (10/50 + 12/40) / 2 = +0.35, the interval a point here
    assert "+0.35 [+0.35, +0.35] recovered (1/1)" in tex and "+0.03 [+0.03, +0.03] kept (1/1)" in tex
    ratios = per_model_ratios_table(summary)
    assert "0.67" in ratios and "0.53" in ratios  # VerbMem 30 / 45, KnowMem 20 / 38


def test_contrast_table_lists_each_stack_against_each_baseline():
    summary = _summary()
    tex = contrast_table(contrast(summary, _samples(summary)))
    assert "bf16 $-$ fp32" in tex and "(1/1)" in tex and "higher" in tex
    assert "No contrast" in contrast_table(contrast(summary[summary["stack"] != "fp32"], _samples(summary)))


def test_an_audited_model_is_labelled_as_given_and_stays_out_of_the_headline():
    summary = _summary()
    assert "my-npo (audited, t0)" in main_table(summary) and "my-npo (audited, t0)" in per_model_ratios_table(summary)
    assert "0.89" in per_model_ratios_table(summary)  # its own row: VerbMem 40 / 45 at RTN 4-bit
    grid_only = headline(summary[~summary["audited"]])
    assert headline(summary)["mean_recovery_ratio"].tolist() == grid_only["mean_recovery_ratio"].tolist()
    labelled = model_label("my-npo", True, "simnpo", 2e-5, "bf16", "", 1)
    assert labelled == "my-npo (audited, t1, SIMNPO, 2e-5, bf16)"


def _as_paper_formats(summary):
    """The summary with its RTN-4 rows relabelled as bitsandbytes FP4 (the paper's 4-bit) and GA_KLR as NPO_GDR."""
    fp4 = summary["quantizer"] == "rtn"
    return summary.assign(quantizer=summary["quantizer"].where(~fp4, "bnb-fp4"), format=summary["format"].where(~fp4, "bnb-fp4-w4"),
                          group_size=summary["group_size"].where(~fp4, ""),
                          method=summary["method"].replace({"ga_klr": "npo_gdr"}))


def test_the_paper_comparison_sets_the_published_ratios_beside_this_runs():
    comparison = paper_comparison(_as_paper_formats(_summary()), read_paper(PAPER)).set_index(["source", "precision"])
    paper = comparison.loc[("paper: MUSE NEWS, Llama-2-7B, bf16", "bnb-fp4-w4")]
    assert paper["verbmem_f_ratio"] == pytest.approx(33.2 / 34.2) and paper["knowmem_f_ratio"] == pytest.approx(51.4 / 54.4)
    run = comparison.loc[("this run: toy-news, bf16", "bnb-fp4-w4")]
    assert run["verbmem_f_ratio"] == pytest.approx(30 / 45) and run["mean_ratio"] == pytest.approx((30 / 45 + 20 / 38) / 2)
    assert set(comparison.index.get_level_values("precision")) == {"full", "bnb-fp4-w4"}  # formats both have
    assert run["utility"] == pytest.approx(25 / 29) and run["privleak"] == -90
    assert paper["utility"] == pytest.approx(48.2 / 48.2) and paper["privleak"] == -99.8
    assert "0.96 (0.97 / 0.94); 1.00; -99.8" in paper_table(comparison.reset_index())
    int8 = _summary().replace({"rtn": "bnb-int8", "rtn-w4g64": "bnb-int8-w8"})  # GA_KLR's 8-bit row, the paper's
    published = paper_comparison(int8, read_paper(PAPER)).set_index(["source", "method", "precision"])  # no target
    ga_klr = published.loc[("paper: MUSE NEWS, Llama-2-7B, bf16", "ga_klr", "bnb-int8-w8")]  # there: full's
    assert ga_klr["verbmem_f_ratio"] == pytest.approx(15.3 / 58.4) and ga_klr["utility"] == pytest.approx(24.5 / 55.2)
    sure_only = _summary()[lambda s: s["method"].isin(["", "ga_klr_sure"])]  # a method the paper's table lacks
    assert "No method and format in common" in paper_table(paper_comparison(sure_only, read_paper(PAPER)))


def test_every_figure_is_drawn(tmp_path):
    summary = _as_paper_formats(_summary())
    samples = _samples(summary)
    recovery, by_target = headline(summary, samples), headline_by_target(summary, samples)
    paths = {name: tmp_path / f"{name}.png" for name in FIGURES}
    tension = pd.DataFrame([("bf16", "npo_gdr", 3e-5, False, "rtn-w4g64", 0.8, 0.7, 0.9, 0.15, 0.05, 0.25, 3),
                            ("fp32", "npo_gdr", 1e-4, True, "rtn-w4g64", 0.6, 0.5, 0.7, 0.0, -0.05, 0.04, 3)],
                           columns=TENSION_COLUMNS)
    mink = pd.DataFrame([("toy-news", 0, model, method, lr, stack, format_id, split, score)
                         for model, method, lr, stack in [("target", "", "", ""), ("npo_gdr_lr3e-5_bf16_s0", "npo_gdr",
                                                                                    "3e-5", "bf16")]
                         for format_id in ("full", "rtn-w4g64") for split, score in [("forget", 1.0), ("holdout", 3.0)]],
                        columns=SCORE_COLUMNS)
    draw_all(summary, recovery, by_target, read_paper(PAPER), pd.DataFrame(), tension, mink, paths, margin=0.1)
    for name, path in paths.items():
        assert path.read_bytes()[:4] == b"\x89PNG", name


def test_the_paper_comparison_draws_one_method_beside_many_stacks(tmp_path):
    """The adapters preset's shape: one method the paper has, in six stacks (two full-weight, four servings of an
    adapter), whose long legend once left the figure no room (seaborn: left cannot be >= right)."""
    from qunlearn.report.figures import paper_comparison as draw_paper_comparison

    summary = _as_paper_formats(_summary())
    npo_gdr = summary[summary["method"] == "npo_gdr"]  # _as_paper_formats relabels GA_KLR as NPO_GDR
    stacks = ["bf16", "fp32", *(f"lora-r8a16+{serving}" for serving in ("merged-bf16", "merged-fp32", "served", "served-q4"))]
    many = pd.concat([summary[summary["method"] == ""],
                      *(npo_gdr.assign(stack=stack, model=f"npo_gdr_lr1e-4_{stack}_s0") for stack in stacks)])
    assert len(paper_comparison(many, read_paper(PAPER))["source"].unique()) == 1 + len(stacks)
    draw_paper_comparison(many, read_paper(PAPER), tmp_path / "paper.png")
    assert (tmp_path / "paper.png").read_bytes()[:4] == b"\x89PNG"


def test_a_figure_with_nothing_to_draw_says_so(tmp_path):
    """An audit-only run has no grid method the paper's table has, and a run without attacks no attack: each figure
    still exists (the rule's output), as a note."""
    from qunlearn.report.figures import attack_recovery, paper_comparison, privleak_scores, utility_tension

    sure_only = _summary()[lambda s: s["method"].isin(["", "ga_klr_sure"])]
    paper_comparison(sure_only, read_paper(PAPER), tmp_path / "paper.png")
    attack_recovery(pd.DataFrame(), tmp_path / "attacks.png")
    utility_tension(pd.DataFrame(columns=TENSION_COLUMNS), tmp_path / "tension.png")
    privleak_scores(pd.DataFrame(columns=SCORE_COLUMNS), tmp_path / "mink.png")
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in ("paper.png", "attacks.png",
                                                                           "tension.png", "mink.png"))
