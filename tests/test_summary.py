import pandas as pd
import pytest

from qunlearn.summary import add_recovery_ratios, headline


def _table():
    rows = [
        # corpus, model, method, quantizer, bits, verbmem_f, knowmem_f
        ("news", "target", "", "none", 32, 50.0, 40.0),
        ("news", "target", "", "rtn", 4, 40.0, 20.0),
        ("news", "ga_klr_lr1e-5", "ga_klr", "none", 32, 10.0, 8.0),
        ("news", "ga_klr_lr1e-5", "ga_klr", "rtn", 4, 30.0, 20.0),
        ("news", "ga_lr1e-5", "ga", "none", 32, 0.0, 0.0),  # no utility term: not in the headline
        ("news", "ga_lr1e-5", "ga", "rtn", 4, 0.0, 0.0),
    ]
    table = pd.DataFrame(rows, columns=["corpus", "model", "method", "quantizer", "bits", "verbmem_f", "knowmem_f"])
    table["diverged"] = table["audited"] = False
    table["unlearn_precision"] = ["" if m == "" else "bf16" for m in table["method"]]
    return add_recovery_ratios(table)


def test_recovery_ratio_is_relative_to_the_target_at_the_same_precision():
    table = _table()
    ga_klr = table[table["method"] == "ga_klr"].set_index("quantizer")
    assert ga_klr.loc["none", "verbmem_f_ratio"] == pytest.approx(0.2)  # 10 / 50
    assert ga_klr.loc["rtn", "verbmem_f_ratio"] == pytest.approx(0.75)  # 30 / 40, not 30 / 50
    assert ga_klr.loc["rtn", "knowmem_f_ratio"] == pytest.approx(1.0)


def test_headline_averages_constrained_methods_over_forget_metrics_per_corpus_and_overall():
    result = headline(_table())
    assert set(result["corpus"]) == {"news", "all"} and (result["unlearn_precision"] == "bf16").all()
    news = result[result["corpus"] == "news"].set_index("quantizer")
    assert news.loc["none", "mean_recovery_ratio"] == pytest.approx((0.2 + 0.2) / 2)
    assert news.loc["rtn", "mean_recovery_ratio"] == pytest.approx((0.75 + 1.0) / 2)
    assert news.loc["rtn", "vs_full"] == pytest.approx((0.75 + 1.0) / 2 - 0.2)
    assert news.loc["none", "vs_full"] == 0 and news.loc["rtn", "values"] == 2


def test_headline_keeps_unlearning_precisions_apart():
    table = _table()
    bf16 = table[table["method"] == "ga_klr"]
    fp32 = bf16.assign(unlearn_precision="fp32", verbmem_f_ratio=0.2, knowmem_f_ratio=0.2)
    result = headline(pd.concat([table, fp32])).query("corpus == 'all' and quantizer == 'rtn'")
    assert result.set_index("unlearn_precision")["vs_full"].to_dict() == pytest.approx({"bf16": 0.675, "fp32": 0.0})


def test_a_diverged_model_keeps_its_rows_marked_and_out_of_the_headline(tmp_path):
    from qunlearn.io import write_json
    from qunlearn.summary import summarize

    metrics = {"verbmem_f": 40.0, "knowmem_f": 30.0, "knowmem_r": 20.0, "privleak_auc": 0.5,
               "items": {"verbmem_f": [40.0], "knowmem_f": [30.0], "knowmem_r": [20.0]}}
    files, rows = [], []
    for model, method in (("target", ""), ("retrain", ""), ("ga_klr_lr1e-4", "ga_klr"), ("ga_gdr_lr1e3", "ga_gdr")):
        write_json(tmp_path / f"{model}.json", metrics)
        files.append(str(tmp_path / f"{model}.json"))
        rows.append(dict(corpus="news", model=model, audited=False, method=method, lr="",
                         unlearn_precision="bf16" if method else "",
                         quantizer="none", bits=32, group_size=""))
    (tmp_path / "news").mkdir()
    write_json(tmp_path / "news/ga_klr_lr1e-4.json", {"diverged": False})
    write_json(tmp_path / "news/ga_gdr_lr1e3.json", {"diverged": True, "diverged_epoch": 1})
    table, _ = summarize(files, rows, [str(tmp_path / "news/ga_klr_lr1e-4.json"), str(tmp_path / "news/ga_gdr_lr1e3.json")],
                      {"news": None})
    assert table.set_index("model")["diverged"].to_dict() == {"target": False, "retrain": False, "ga_klr_lr1e-4": False,
                                                              "ga_gdr_lr1e3": True}
    assert headline(table)["values"].tolist() == [2, 2]  # GA_KLR's two forget metrics (news, all); not the diverged GA_GDR
