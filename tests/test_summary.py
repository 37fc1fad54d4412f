"""The summary: ratios and excess against each model's own target, paired intervals, the headline over targets, the
per-target breakdown and the contrast between precision stacks, on metrics files written by hand."""

import numpy as np
import pandas as pd
import pytest

from qunlearn.analysis import bootstrap
from qunlearn.analysis.summary import (FORGET_METRICS, ITEM_METRICS, contrast, format_table, headline,
                                       headline_by_method, headline_by_target, nested_change, summarize)
from qunlearn.io import write_json

RNG_ITEMS = 40
FORMATS = [("full", "none", 32, ""), ("rtn-w4g64", "rtn", 4, 64)]


def _grid_row(model: str, method: str, stack: str, seed: int) -> dict:
    return dict(model=model, audited=False, method=method, lr="3e-5", stack=stack, seed=seed)


def _base_row(model: str) -> dict:
    return dict(model=model, audited=False, method="", lr="", stack="", seed="")


class Study:
    """Metrics files of a small study, written to disk as the evaluation writes them, and `summarize` over them."""

    def __init__(self, tmp_path):
        self.tmp_path, self.files, self.rows = tmp_path, [], []

    def add(self, corpus: str, target_seed: int, row: dict, items_by_format: dict) -> None:
        for (format_id, quantizer, bits, group), items in zip(FORMATS, items_by_format):
            path = self.tmp_path / f"{corpus}-{target_seed}-{row['model']}-{quantizer}.json"
            scores = {m: float(np.mean(v)) for m, v in items.items()}
            write_json(path, {**scores, "privleak_auc": 0.5, "items": items})
            self.files.append(str(path))
            self.rows.append(dict(corpus=corpus, rung=0, width=256, target_seed=target_seed, **row, format=format_id, quantizer=quantizer,
                                  bits=bits, group_size=group))

    def summarize(self, only_target_seed=None):
        keep = [i for i, row in enumerate(self.rows) if only_target_seed in (None, row["target_seed"])]
        return summarize([self.files[i] for i in keep], [self.rows[i] for i in keep], [], {"news": None})


def _items(rng, low, high):
    return {m: list(rng.uniform(low, high, RNG_ITEMS)) for m in ITEM_METRICS}


def _study(tmp_path, targets=(0,), unlearned_at_rtn=lambda unlearned, target: unlearned, stacks=("bf16",),
           seeds=(0,), at_rtn_by_stack=None):
    """Per target seed: its target and retrain model and an NPO_GDR model per stack and unlearning seed; every model
    unchanged by RTN-4 except the unlearned ones, which `unlearned_at_rtn` (or `at_rtn_by_stack[stack]`) maps."""
    study, rng = Study(tmp_path), np.random.default_rng(0)
    for target_seed in targets:
        target, retrain = _items(rng, 40, 80), _items(rng, 0, 30)
        study.add("news", target_seed, _base_row("target"), [target, target])
        study.add("news", target_seed, _base_row("retrain"), [retrain, retrain])
        for stack in stacks:
            for seed in seeds:
                unlearned = _items(rng, 10, 50)
                at_rtn = (at_rtn_by_stack or {}).get(stack, unlearned_at_rtn)
                study.add("news", target_seed, _grid_row(f"npo_gdr_lr3e-5_{stack}_s{seed}", "npo_gdr", stack, seed),
                          [unlearned, at_rtn(unlearned, target)])
    return study


def test_ratio_and_excess_are_relative_to_the_models_own_target_and_retrain_model(tmp_path):
    table, _ = _study(tmp_path, targets=(0, 1)).summarize()
    for (seed, quantizer), rows in table.groupby(["target_seed", "quantizer"]):
        by_model = rows.set_index("model")
        for metric in FORGET_METRICS:
            target, retrain = by_model.loc["target", metric], by_model.loc["retrain", metric]
            model = by_model.loc["npo_gdr_lr3e-5_bf16_s0", metric]
            assert by_model.loc["npo_gdr_lr3e-5_bf16_s0", f"{metric}_ratio"] == pytest.approx(model / target)
            assert by_model.loc["npo_gdr_lr3e-5_bf16_s0", f"{metric}_excess"] == pytest.approx(
                (model - retrain) / (target - retrain))


def test_excess_is_1_for_the_target_and_0_for_the_retrain_model_at_every_precision(tmp_path):
    table, _ = _study(tmp_path, targets=(0, 1)).summarize()
    for metric in FORGET_METRICS:
        assert (table.loc[table["model"] == "target", f"{metric}_excess"] == 1).all()
        assert (table.loc[table["model"] == "retrain", f"{metric}_excess"] == 0).all()
    assert set(table.loc[table["model"] == "retrain", "quantizer"]) == {"none", "rtn"}


def test_a_model_paired_with_its_own_target_gives_exactly_a_single_target_runs_numbers(tmp_path):
    """Every row of target seed 1 in a two-target study equals the same row of a study with target seed 1 alone:
    its ratios, excess, paired change and interval."""
    study = _study(tmp_path, targets=(0, 1), unlearned_at_rtn=lambda unlearned, target: target)
    both, _ = study.summarize()
    alone, _ = study.summarize(only_target_seed=1)
    columns = [c for c in alone.columns if c.endswith(("_ratio", "_excess", "vs_full", "_lo", "_hi", "verdict"))]
    pd.testing.assert_frame_equal(both[both["target_seed"] == 1][columns].reset_index(drop=True),
                                  alone[columns].reset_index(drop=True))


def test_a_model_paired_with_itself_changes_by_exactly_zero(tmp_path):
    table, samples = _study(tmp_path).summarize()
    row = table[(table["quantizer"] == "rtn") & (table["model"] != "target") & (table["model"] != "retrain")].iloc[0]
    for view in ("ratio", "excess"):
        assert (row[f"{view}_vs_full"], row[f"{view}_vs_full_lo"], row[f"{view}_vs_full_hi"]) == (0, 0, 0)
    assert row["verdict"] == "kept" and row["excess_verdict"] == "kept"
    result = headline(table, samples).query("quantizer == 'rtn'")
    assert (result[["vs_full", "vs_full_lo", "vs_full_hi"]].to_numpy() == 0).all() and set(result["corpus"]) == {"news", "all"}
    assert (table["verbmem_f_lo"] <= table["verbmem_f"]).all() and (table["verbmem_f"] <= table["verbmem_f_hi"]).all()


def test_a_model_that_returns_to_the_target_under_quantization_is_recovered_in_both_views(tmp_path):
    table, samples = _study(tmp_path, unlearned_at_rtn=lambda unlearned, target: target).summarize()
    row = table[(table["quantizer"] == "rtn") & (table["model"].str.startswith("npo"))].iloc[0]
    full = table[(table["quantizer"] == "none") & (table["model"].str.startswith("npo"))].iloc[0]
    assert row["ratio_vs_full"] == pytest.approx(1 - np.mean([full[f"{m}_ratio"] for m in FORGET_METRICS]))
    assert row["excess_vs_full"] == pytest.approx(1 - np.mean([full[f"{m}_excess"] for m in FORGET_METRICS]))
    assert row["ratio_vs_full_lo"] > 0.3 and row["verdict"] == "recovered" and row["excess_verdict"] == "recovered"
    result = headline(table, samples).query("quantizer == 'rtn'")
    assert result["verdict"].tolist() == ["recovered", "recovered"] and result["targets_agree"].tolist() == [1, 1]
    assert result["target_verdicts"].tolist() == ["recovered 1", "recovered 1"]


def test_the_headline_counts_targets_and_how_many_reach_its_verdict(tmp_path):
    """Three targets: two whose unlearned models return to the target at 4 bits, one whose model keeps its
    forgetting. The per-target file has each target's own verdict; pooled over targets, the disagreeing target
    leaves the verdict `unclear` (one resample in 27 draws it three times), and the headline lists the targets'
    verdicts. Its interval is wider than one target's."""
    study = _study(tmp_path, targets=(0, 1, 2), unlearned_at_rtn=lambda unlearned, target: target)
    keep = [i for i, row in enumerate(study.rows) if row["target_seed"] == 2 and row["quantizer"] == "rtn"
            and row["model"].startswith("npo")]
    for i in keep:  # target 2's model keeps its full-precision items at 4 bits
        study.files[i] = study.files[i - 1]
    table, samples = study.summarize()
    by_target = headline_by_target(table, samples).query("quantizer == 'rtn'").set_index("target_seed")
    assert by_target["verdict"].to_dict() == {0: "recovered", 1: "recovered", 2: "kept"}
    news = headline(table, samples).query("quantizer == 'rtn' and corpus == 'news'").iloc[0]
    assert news["targets"] == 3 and news["verdict"] == "unclear" and news["targets_agree"] == 0
    assert news["target_verdicts"] == "recovered 2, kept 1"
    single = headline(table[table["target_seed"] == 0], samples).query("quantizer == 'rtn' and corpus == 'news'")
    assert news["vs_full_hi"] - news["vs_full_lo"] > single["vs_full_hi"].iloc[0] - single["vs_full_lo"].iloc[0]


def test_the_headline_per_method_says_which_method_carries_the_pooled_change(tmp_path):
    """Two targets, NPO_GDR returning to its target at 4 bits, GA_GDR keeping its forgetting: each method's own row
    gets its own verdict, and the pooled headline lies between the two."""
    study = _study(tmp_path, targets=(0, 1), unlearned_at_rtn=lambda unlearned, target: target)
    rng = np.random.default_rng(1)
    for target_seed in (0, 1):
        kept = _items(rng, 10, 50)
        study.add("news", target_seed, _grid_row("ga_gdr_lr3e-5_bf16_s0", "ga_gdr", "bf16", 0), [kept, kept])
    table, samples = study.summarize()
    by_method = headline_by_method(table, samples).query("quantizer == 'rtn' and corpus == 'news'").set_index("method")
    assert by_method["verdict"].to_dict() == {"npo_gdr": "recovered", "ga_gdr": "kept"}
    assert by_method.loc["ga_gdr", "vs_full"] == 0 and set(by_method["lr"]) == {"3e-5"}
    assert by_method.loc["npo_gdr", "targets_agree"] == 2
    pooled = headline(table, samples).query("quantizer == 'rtn' and corpus == 'news'")["vs_full"].iloc[0]
    assert pooled == pytest.approx(by_method["vs_full"].mean())


def test_the_contrast_is_a_stacks_recovery_minus_the_baselines_paired_by_target_and_seed(tmp_path):
    study = _study(tmp_path, targets=(0, 1), stacks=("bf16", "fp32", "mixed"), seeds=(0, 1),
                   at_rtn_by_stack={"bf16": lambda unlearned, target: target})
    table, samples = study.summarize()
    result = contrast(table, samples).set_index(["corpus", "stack", "baseline"])
    bf16 = result.loc[("news", "bf16", "fp32")]
    changes = table[table["quantizer"] == "rtn"].groupby("stack")["ratio_vs_full"].mean()
    assert bf16["contrast"] == pytest.approx(changes["bf16"] - changes["fp32"])
    assert bf16["verdict"] == "higher" and bf16["targets_above"] == 2 and bf16["targets"] == 2
    same = result.loc[("news", "mixed", "fp32")]  # both unchanged by quantization: exactly no difference
    assert (same["contrast"], same["contrast_lo"], same["contrast_hi"], same["verdict"]) == (0, 0, 0, "same")
    assert ("news", "fp32", "fp32") not in result.index and ("all", "bf16", "mixed") in result.index
    assert result.loc[("news", "fp32", "mixed"), "verdict"] == "same"


def test_each_way_of_serving_an_adapter_is_a_stack_of_its_own_compared_with_fp32(tmp_path):
    """An adapter's servings (config.naming: the stack slot of their names) get their own headline rows and their
    own contrast against full-weight fp32, as the precision stacks do."""
    merged, served = "lora-r8a16+merged-bf16", "lora-r8a16+served"
    study = _study(tmp_path, targets=(0, 1), stacks=("fp32", merged, served),
                   at_rtn_by_stack={merged: lambda unlearned, target: target})
    table, samples = study.summarize()
    rtn = headline(table, samples).query("quantizer == 'rtn' and corpus == 'news'").set_index("stack")
    assert rtn["verdict"].to_dict() == {"fp32": "kept", merged: "recovered", served: "kept"}
    against_fp32 = contrast(table, samples).query("quantizer == 'rtn' and corpus == 'news' and baseline == 'fp32'")
    assert against_fp32.set_index("stack")["verdict"].to_dict() == {merged: "higher", served: "same"}


def test_a_diverged_model_keeps_its_rows_marked_and_out_of_the_headline(tmp_path):
    study = _study(tmp_path, stacks=("bf16", "fp32"))
    records = []
    for stack, diverged in (("bf16", False), ("fp32", True)):
        merge = {"merge": {"surviving_share": 0.25}} if stack == "bf16" else {}  # as a merged adapter's record
        write_json(tmp_path / f"{stack}.json", {"diverged": diverged, **merge})
        records.append((str(tmp_path / f"{stack}.json"), dict(corpus="news", rung=0, width=256, target_seed=0,
                                                              model=f"npo_gdr_lr3e-5_{stack}_s0")))
    table, _ = summarize(study.files, study.rows, records, {"news": None})
    assert table.groupby("model")["diverged"].all().to_dict() == {
        "npo_gdr_lr3e-5_bf16_s0": False, "npo_gdr_lr3e-5_fp32_s0": True, "retrain": False, "target": False}
    assert set(headline(table)["stack"]) == {"bf16"}  # not the diverged model's stack
    shares = table.groupby("model")["merge_surviving_share"].first()  # NaN where the record has no merge
    assert shares["npo_gdr_lr3e-5_bf16_s0"] == 0.25 and shares.drop("npo_gdr_lr3e-5_bf16_s0").isna().all()


def test_headline_averages_constrained_methods_over_forget_metrics_per_corpus_and_overall(tmp_path):
    study = _study(tmp_path)
    rng = np.random.default_rng(5)
    ga = _items(rng, 0, 5)
    study.add("news", 0, _grid_row("ga_lr3e-5_bf16_s0", "ga", "bf16", 0), [ga, ga])  # no utility term: left out
    table, _ = study.summarize()
    result = headline(table)
    npo = table[table["method"] == "npo_gdr"].set_index("quantizer")
    news = result[result["corpus"] == "news"].set_index("quantizer")
    assert news.loc["rtn", "mean_recovery_ratio"] == pytest.approx(npo.loc["rtn", ["verbmem_f_ratio", "knowmem_f_ratio"]].mean())
    assert news.loc["rtn", "values"] == 2 and news.loc["none", "vs_full"] == 0
    assert result[result["corpus"] == "all"]["mean_recovery_ratio"].tolist() == news["mean_recovery_ratio"].tolist()


def _cells(targets: dict[int, float], methods: list[str]) -> pd.DataFrame:
    """Rows of one corpus' quantized group: per target seed and method, one unlearning seed whose change is the
    target's value (every method of a target alike)."""
    return pd.DataFrame([dict(corpus="news", rung=0, width=256, target_seed=seed, model=f"{method}_lr3e-5_bf16_s0", method=method,
                              lr="3e-5", seed=0, format="rtn-w4g64", quantizer="rtn", bits=4, group_size=64,
                              change=value)
                         for seed, value in targets.items() for method in methods])


def test_cells_unlearned_from_the_same_targets_resample_those_targets_together():
    """Four methods unlearned from the same three targets vary with the targets as one method does: the interval
    is the one method's, not narrower (targets are drawn once per group, not once per cell)."""
    targets = {0: 0.0, 1: 0.1, 2: 0.5}
    samples_of = lambda row: np.full(bootstrap.RESAMPLES, row["change"])  # noqa: E731
    one = nested_change(_cells(targets, ["npo_gdr"]), "change", samples_of, np.random.default_rng(0))
    four = nested_change(_cells(targets, ["npo_gdr", "npo_klr", "ga_gdr", "ga_klr"]), "change", samples_of,
                         np.random.default_rng(0))
    assert four.estimate == pytest.approx(one.estimate) == pytest.approx(0.2)
    assert bootstrap.interval(four.samples) == bootstrap.interval(one.samples) == (0.0, 0.5)


def test_all_corpora_pool_the_corpora_and_each_interval_ignores_the_other_groups(tmp_path):
    """`all` is the mean over corpora (not over every row: three news targets do not outweigh one books target);
    a corpus' interval is the same whether or not another corpus is summarized beside it."""
    news = _study(tmp_path / "news", targets=(0, 1, 2), unlearned_at_rtn=lambda unlearned, target: target)
    books = _study(tmp_path / "books")
    for row in books.rows:
        row["corpus"] = "books"
    alone, alone_samples = news.summarize()
    both, both_samples = summarize(books.files + news.files, books.rows + news.rows, [], {"news": None, "books": None})
    rtn = lambda result: result.query("quantizer == 'rtn'").set_index("corpus")  # noqa: E731
    pooled_rows, news_only = rtn(headline(both, both_samples)), rtn(headline(alone, alone_samples))
    assert pooled_rows.loc["all", "vs_full"] == pytest.approx(
        (pooled_rows.loc["news", "vs_full"] + pooled_rows.loc["books", "vs_full"]) / 2)
    assert pooled_rows.loc["all", "targets"] == 4
    for column in ("vs_full", "vs_full_lo", "vs_full_hi", "verdict"):
        assert pooled_rows.loc["news", column] == news_only.loc["news", column]


def test_the_printed_answer_shows_all_corpora_only_where_it_pools_several(tmp_path):
    """With one corpus, `all` repeats its rows: the printed tables leave it out (the CSVs keep it)."""
    def answer(table, samples):  # the first column of the headline's and the contrast's printed rows
        text = format_table(table, headline(table, samples), contrast(table, samples))
        lines = text.split("Does forgetting come back?")[1].splitlines()[1:]
        return [line.split()[0] for line in lines if line.strip() and line.split()[0] not in ("Does", "corpus")]

    news = _study(tmp_path / "news", stacks=("bf16", "fp32"))
    one_corpus = news.summarize()
    assert set(answer(*one_corpus)) == {"news"}
    assert set(headline(*one_corpus)["corpus"]) == {"news", "all"}
    books = _study(tmp_path / "books", stacks=("bf16", "fp32"))
    for row in books.rows:
        row["corpus"] = "books"
    both = summarize(books.files + news.files, books.rows + news.rows, [], {"news": None, "books": None})
    assert set(answer(*both)) == {"news", "books", "all"}


def test_a_target_that_scores_nothing_leaves_the_group_undefined(tmp_path):
    """A target whose forget metric is 0 has no recovery ratio: the pooled verdict is undefined, not an interval
    drawn from the resamples that happen to miss it."""
    study = _study(tmp_path, targets=(0, 1))
    zero = {m: [0.0] * RNG_ITEMS for m in ITEM_METRICS}
    for i, row in enumerate(study.rows):
        if row["target_seed"] == 1 and row["model"] == "target":
            write_json(study.files[i], {**{m: 0.0 for m in ITEM_METRICS}, "privleak_auc": 0.5, "items": zero})
    table, samples = study.summarize()
    news = headline(table, samples).query("quantizer == 'rtn' and corpus == 'news'").iloc[0]
    assert np.isnan(news["vs_full"]) and news["verdict"] == "undefined"
