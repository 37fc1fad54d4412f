"""The width ladder (analysis.widths, config.widths): parameter counts, the calibration rule on hand-made metrics,
the fit on synthetic points, and the ladder's table from summary-shaped rows."""

import numpy as np
import pandas as pd
import pytest

from qunlearn.analysis.widths import calibrated, fit, ladder_fits, ladder_table, paper_point, target_calibration
from qunlearn.config.widths import PAPER_PARAMETERS, ladder_parameters, parameter_count, rung_model
from qunlearn.report.tables import widths_table

MODEL = {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 768, "seeds": [0, 1, 2],
         "pretrain": {"epochs": 15, "lr": 3e-3}, "finetune": {"epochs": 40, "lr": 3e-3},
         "widths": [{"hidden": 512, "seeds": [0, 1], "finetune": {"lr": 1e-3}}, {"hidden": 128}]}


def test_a_rung_scales_heads_and_intermediate_with_hidden_and_takes_its_own_recipe():
    rung = rung_model(MODEL, 512)
    assert (rung["heads"], rung["intermediate"], rung["layers"], rung["seeds"]) == (8, 1536, 4, [0, 1])
    assert rung["finetune"] == {"epochs": 40, "lr": 1e-3} and rung["pretrain"] == MODEL["pretrain"]
    assert rung_model(MODEL, 128)["seeds"] == [0, 1, 2]


def test_parameter_counts_are_the_built_models(toy_tokenizer):
    from qunlearn.models.training import build_llama

    for hidden, heads, intermediate in ((64, 2, 128), (128, 4, 384)):
        model = build_llama(len(toy_tokenizer), hidden=hidden, layers=2, heads=heads, intermediate=intermediate,
                            max_position=64, tokenizer=toy_tokenizer, seed=0)
        assert sum(p.numel() for p in model.parameters()) == parameter_count(hidden, 2, intermediate,
                                                                             len(toy_tokenizer))
    assert ladder_parameters(MODEL, 2048) == {256: 4_458_752, 512: parameter_count(512, 4, 1536, 2048),
                                              128: parameter_count(128, 4, 384, 2048)}


def _rung(width):
    """MODEL's own width is 256 (rung 0); every other is a rung of its own."""
    return 0 if width == MODEL["hidden"] else width


def _pair(width, seed, target, retrain):
    """A target's and its retrain model's full-precision rows, (VerbMem-f, KnowMem-f, KnowMem-r) each."""
    return [{"corpus": "news", "rung": _rung(width), "width": width, "target_seed": seed, "model": model,
             "quantizer": "none", "attack": "",
             "method": "", "diverged": False, "audited": False,
             **dict(zip(("verbmem_f", "knowmem_f", "knowmem_r"), values))}
            for model, values in (("target", target), ("retrain", retrain))]


def test_the_calibration_rule_reads_each_target_against_its_own_retrain_model():
    rows = (_pair(256, 0, (51.0, 26.0, 23.0), (28.8, 2.9, 28.8))  # the default's t0: meets the rule
            + _pair(256, 1, (37.0, 18.0, 25.0), (29.0, 2.9, 27.9))  # VerbMem-f margin 8.0: meets it, just
            + _pair(512, 0, (31.2, 11.9, 30.0), (27.8, 2.5, 30.0))  # the probe's weak target: misses both margins
            + _pair(512, 1, (50.0, 30.0, 15.0), (28.0, 3.0, 25.5))  # forgets retain knowledge: 10.5 below
            + _pair(128, 0, (45.0, 17.0, 20.0), (28.0, 3.0, 20.0))  # KnowMem-f margin 14: misses
            + _pair(128, 1, (45.0, 30.0, 20.0), (28.0, 3.0, 20.0)))
    table = target_calibration(pd.DataFrame(rows)).set_index(["width", "target_seed"])
    assert table.loc[(256, 0), "rung"] == 0 and table.loc[(512, 0), "rung"] == 512
    assert table["meets_rule"].to_dict() == {(128, 0): False, (128, 1): True, (256, 0): True, (256, 1): True,
                                             (512, 0): False, (512, 1): False}
    assert table.loc[(512, 1), "retain_gap"] == pytest.approx(-10.5)
    assert calibrated(table.reset_index()).set_index("width")["calibrated"].to_dict() == {128: False, 256: True,
                                                                                        512: False}


def test_the_fit_recovers_a_known_slope_and_extrapolates_with_an_interval():
    parameters = np.array([1.2e6, 4.5e6, 1.7e7, 3.6e7])
    rng = np.random.default_rng(0)
    line = 0.05 + 0.08 * np.log10(parameters / 1e6)
    exact = fit(parameters, line)
    assert exact.slope == pytest.approx(0.08) and exact.trend == "rises" and exact.points == 4
    assert exact.at_paper == pytest.approx(0.05 + 0.08 * np.log10(PAPER_PARAMETERS / 1e6))
    noisy = fit(parameters, line + rng.normal(0, 0.01, 4))
    assert noisy.slope_lo < 0.08 < noisy.slope_hi and noisy.at_paper_lo < exact.at_paper < noisy.at_paper_hi
    flat = fit(parameters, np.array([0.1, 0.2, 0.1, 0.2]))
    assert flat.trend == "none" and flat.slope_lo < 0 < flat.slope_hi
    assert fit(parameters, -line).trend == "falls"
    assert fit(parameters[:2], line[:2]) is None  # two points leave no interval
    assert fit(parameters, np.array([0.1, np.nan, 0.2, np.nan])) is None  # undefined values are left out


def _ladder(widths=(128, 256, 512, 768), slope=0.1, uncalibrated=()):
    """summary, recovery and contrast rows of a ladder whose bf16 change at RTN-4 rises by `slope` per decade."""
    parameters = {w: parameter_count(w, 4, 3 * w, 2048) for w in widths}
    summary, recovery, contrast = [], [], []
    for width in widths:
        margin = 5.0 if width in uncalibrated else 20.0
        summary += _pair(width, 0, (28.0 + margin, 3.0 + margin, 20.0), (28.0, 3.0, 20.0))
        change = {"bf16": slope * np.log10(parameters[width] / 1e6), "fp32": 0.0}
        for stack, value in change.items():
            summary.append({"corpus": "news", "rung": _rung(width), "width": width, "target_seed": 0,
                            "model": f"npo_gdr_lr3e-5_{stack}_s0",
                            "method": "npo_gdr", "lr": "3e-5", "stack": stack, "seed": 0, "format": "rtn-w4g64",
                            "quantizer": "rtn", "bits": 4, "group_size": 64, "attack": "", "diverged": False,
                            "audited": False, "surviving_update": 0.5 if stack == "bf16" else 1.0, "moved": 0.3})
            recovery.append({"corpus": "news", "rung": _rung(width), "stack": stack, "sure": False, "format": "rtn-w4g64",
                             "quantizer": "rtn", "bits": 4, "targets": 1, "vs_full": value, "vs_full_lo": value - 0.05,
                             "vs_full_hi": value + 0.05, "verdict": "recovered", "excess_vs_full": 2 * value,
                             "excess_vs_full_lo": 2 * value - 0.1, "excess_vs_full_hi": 2 * value + 0.1,
                             "excess_verdict": "recovered", "targets_agree": 1})
        contrast.append({"corpus": "news", "rung": _rung(width), "sure": False, "format": "rtn-w4g64", "stack": "bf16",
                         "baseline": "fp32", "contrast": change["bf16"], "contrast_lo": change["bf16"] - 0.05,
                         "contrast_hi": change["bf16"] + 0.05, "verdict": "higher", "targets": 1, "targets_above": 1})
    return pd.DataFrame(summary), pd.DataFrame(recovery), pd.DataFrame(contrast), parameters


def test_the_ladder_table_joins_each_width_s_change_mechanism_contrast_and_calibration():
    summary, recovery, contrast, parameters = _ladder(uncalibrated=(768,))
    table = ladder_table(summary, recovery, contrast, parameters)
    bf16 = table[table["stack"] == "bf16"].set_index("width")
    assert list(bf16.index) == [128, 256, 512, 768]
    assert bf16["calibrated"].to_dict() == {128: True, 256: True, 512: True, 768: False}
    assert bf16.loc[512, "parameters"] == parameters[512] and bf16.loc[512, "surviving_update"] == 0.5
    assert bf16.loc[512, "minus_fp32"] == pytest.approx(bf16.loc[512, "vs_full"])
    assert table[table["stack"] == "fp32"]["minus_fp32"].isna().all()  # fp32 is the baseline
    fits = ladder_fits(table).set_index(["stack", "measure"])
    assert fits.loc[("bf16", "vs_full"), "slope"] == pytest.approx(0.1) and fits.loc[("bf16", "vs_full"), "points"] == 3
    assert fits.loc[("bf16", "excess_vs_full"), "slope"] == pytest.approx(0.2)
    assert fits.loc[("fp32", "vs_full"), "trend"] == "none"
    latex = widths_table(table)
    assert "768 (uncalibrated)" in latex and r"\begin{tabular}" in latex


def test_a_ladder_with_too_few_calibrated_widths_has_no_fit():
    summary, recovery, contrast, parameters = _ladder(uncalibrated=(128, 768))
    assert ladder_fits(ladder_table(summary, recovery, contrast, parameters)).empty


def test_the_paper_s_point_is_the_ladder_s_own_methods():
    summary, _, _, _ = _ladder()
    assert paper_point({"npo_gdr": 0.6, "ga_klr": 0.2}, summary) == 0.6
    assert paper_point({"ga_klr": 0.2}, summary) is None


def test_a_recipe_is_tried_on_its_rung_alone():
    from qunlearn.analysis.width_recipes import RECIPES, with_recipe

    config = {"model": MODEL, "corpora": {}}
    tried = with_recipe(config, 512, 60, 1e-3, pretrain_lr=1e-3)
    assert tried["model"]["widths"] == [{"hidden": 512, "seeds": [0, 1], "finetune": {"lr": 1e-3, "epochs": 60},
                                         "pretrain": {"lr": 1e-3}}]
    assert config["model"]["widths"][0]["finetune"] == {"lr": 1e-3}  # the config itself is left as it was
    assert with_recipe(config, 128, *RECIPES[0], None)["model"]["widths"] == [
        {"hidden": 128, "finetune": {"epochs": 40, "lr": 3e-3}}]
    assert RECIPES[0] == (MODEL["finetune"]["epochs"], MODEL["finetune"]["lr"])  # the rule starts at the default


def test_the_driver_reads_a_rung_s_targets_from_their_evaluation_files(tmp_path, monkeypatch):
    from qunlearn.analysis.width_recipes import read_targets
    from qunlearn.io import write_json

    monkeypatch.chdir(tmp_path)
    for role, values in (("target", (50.0, 20.0, 30.0)), ("retrain", (28.0, 3.0, 35.0))):
        write_json(f"results/metrics/news/t1-w512/{role}/full.json",
                   dict(zip(("verbmem_f", "knowmem_f", "knowmem_r"), values)))
    found = read_targets(["news"], [1], 512).iloc[0]
    assert (found["rung"], found["width"], found["target_seed"]) == (512, 512, 1)
    assert (found["verbmem_margin"], found["knowmem_margin"], found["retain_gap"]) == (22.0, 17.0, -5.0)
    assert found["meets_rule"]


def test_the_ladder_figure_keeps_the_measured_points_in_view(monkeypatch, tmp_path):
    from qunlearn.report import figures

    summary, recovery, contrast, parameters = _ladder()
    table = ladder_table(summary, recovery, contrast, parameters)
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.append(figure))
    figures.width_ladder(table, ladder_fits(table), 0.59, tmp_path / "widths.png")
    (figure,) = drawn
    first = figure.axes[0]  # the ratio view's row: the ladder's intervals, 0 and the paper's +0.59
    low, high = first.get_ylim()
    assert low < 0 < table["vs_full_hi"].max() < 0.59 < high < 1.0
