import pandas as pd

from qunlearn.plots import DRAW
from qunlearn.summary import add_recovery_ratios, headline
from qunlearn.tables import main_table, model_label, recovery_table


def _summary():
    rows = [
        # model, method, lr, quantizer, bits, verbmem_f, knowmem_f, knowmem_r, privleak
        ("target", "", "", "none", 32, 50.0, 40.0, 30.0, -100.0),
        ("target", "", "", "rtn", 4, 45.0, 38.0, 29.0, -100.0),
        ("retrain", "", "", "none", 32, 20.0, 10.0, 31.0, 0.0),
        ("ga_klr_lr1e-4", "ga_klr", "1e-4", "none", 32, 10.0, 12.0, 20.0, -40.0),
        ("ga_klr_lr1e-4", "ga_klr", "1e-4", "rtn", 4, 30.0, 20.0, 25.0, -90.0),
        ("ga_klr_sure_lr1e-4", "ga_klr_sure", "1e-4", "none", 32, 15.0, 11.0, 27.0, 5.0),
        ("ga_klr_sure_lr1e-4", "ga_klr_sure", "1e-4", "rtn", 4, 16.0, 12.0, 26.0, 8.0),
        ("my-npo", "", "", "none", 32, 12.0, 14.0, 26.0, -50.0),  # audited: given by path, no method or lr
        ("my-npo", "", "", "rtn", 4, 40.0, 30.0, 26.0, -95.0),
    ]
    table = pd.DataFrame(rows, columns=["model", "method", "lr", "quantizer", "bits", "verbmem_f", "knowmem_f",
                                        "knowmem_r", "privleak"]).assign(corpus="toy-news", diverged=False)
    table["audited"] = table["model"] == "my-npo"
    table["unlearn_precision"] = ["" if m == "" else "bf16" for m in table["method"]]
    table["seed"] = ["" if m == "" else 0 for m in table["method"]]
    table["same_code"] = [None, None, None, None, 0.95, None, 0.99, None, 0.97]
    table["surviving_update"] = [None, None, None, None, 0.4, None, 0.9, None, 0.3]
    table["ratio_vs_full"] = [None, None, None, None, 0.3, None, 0.02, None, 0.6]
    table["bf16_threshold_lr"] = [None, None, None, None, 2e-5, None, 2e-5, None, 2e-5]
    return add_recovery_ratios(table)


def test_main_table_is_booktabs_with_the_best_unlearned_value_in_bold():
    tex = main_table(_summary())
    assert "\\toprule" in tex and "\\bottomrule" in tex and "toy-news" in tex
    assert "\\textbf{10.0}" in tex  # lowest VerbMem-forget among unlearned models (not the retrain's 20.0)
    assert "\\textbf{5.0}" in tex  # PrivLeak nearest 0
    assert "\\textbf{27.0}" in tex  # highest utility
    assert "\\textbf{50.0}" not in tex and "\\textbf{31.0}" not in tex  # target and retrain are not candidates


def test_main_table_cells_carry_half_their_bootstrap_interval():
    summary = _summary()
    summary["verbmem_f_lo"], summary["verbmem_f_hi"] = summary["verbmem_f"] - 2.0, summary["verbmem_f"] + 3.0
    tex = main_table(summary)
    assert "\\textbf{10.0 $\\pm$ 2.5}" in tex and "50.0 $\\pm$ 2.5" in tex
    assert "$\\pm$" not in main_table(_summary())  # no intervals in the summary, none in the table


def test_recovery_table_has_the_headline_with_and_without_sure():
    tex = recovery_table(_summary())
    assert "SURE" in tex and "bf16" in tex and "RTN 4-bit" in tex
    assert "0.67" in tex and "0.53" in tex  # GA_KLR at RTN 4-bit: VerbMem 30 / 45, KnowMem 20 / 38


def test_an_audited_model_is_labelled_as_given_and_stays_out_of_the_headline():
    summary = _summary()
    assert "my-npo (audited)" in main_table(summary) and "my-npo (audited)" in recovery_table(summary)
    assert "0.89" in recovery_table(summary)  # its own row: VerbMem 40 / 45 at RTN 4-bit
    grid_only = headline(summary[~summary["audited"]])
    assert headline(summary)["mean_recovery_ratio"].tolist() == grid_only["mean_recovery_ratio"].tolist()
    labelled = model_label("my-npo", True, "simnpo", 2e-5, "bf16", "")
    assert labelled == "my-npo (audited, SIMNPO, 2e-05, bf16)"


def test_every_figure_is_drawn(tmp_path):
    for name, draw in DRAW.items():
        draw(_summary(), tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
