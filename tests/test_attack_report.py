"""The verdict for an attack, on metrics files written by hand: half B's items only, against the retrain model."""

import numpy as np
import pandas as pd
import pytest

from qunlearn.analysis.attacks import attack_verdicts
from qunlearn.analysis.summary import headline, model_verdicts, summarize
from qunlearn.data.splits import ForgetSplit
from qunlearn.io import write_json

ITEMS = 20
B = list(range(10, ITEMS))  # half B's items of each forget metric
SPLIT = ForgetSplit({"a": [0], "b": [1]}, {m: {"a": list(range(10)), "b": B} for m in ("verbmem_f", "knowmem_f")},
                    {"verbmem_f": 0, "knowmem_f": 0})
ATTACK = "relearn-s30-lr3e-5-b4-bf16"
UNLEARNED = dict(model="npo_gdr_lr3e-5_bf16_s0", audited=False, method="npo_gdr", lr="3e-5", stack="bf16",
                 seed=0)
BASE = dict(audited=False, method="", lr="", stack="", seed="")


def _study(tmp_path, after_attack, unattacked=lambda items: items):
    """A target, its retrain model and one unlearned model, unattacked (`unattacked` may change their random items)
    and attacked; `after_attack(model, items)` gives a model's items after the attack."""
    rng = np.random.default_rng(0)
    items = unattacked({
        "target": {m: rng.uniform(50, 90, ITEMS) for m in ("verbmem_f", "knowmem_f", "knowmem_r")},
        "retrain": {m: rng.uniform(0, 20, ITEMS) for m in ("verbmem_f", "knowmem_f", "knowmem_r")},
        UNLEARNED["model"]: {m: rng.uniform(0, 20, ITEMS) for m in ("verbmem_f", "knowmem_f", "knowmem_r")}})
    files, rows = [], []
    for model, described in (("target", BASE), ("retrain", BASE), (UNLEARNED["model"], UNLEARNED)):
        for attack in ("", ATTACK):
            scores = after_attack(model, items) if attack else items[model]
            path = tmp_path / f"{model}-{attack or 'full'}.json"
            write_json(path, {**{m: float(np.mean(v)) for m, v in scores.items()}, "privleak_auc": 0.5,
                              "items": {m: list(map(float, v)) for m, v in scores.items()}})
            files.append(str(path))
            rows.append(dict(corpus="news", rung=0, width=256, target_seed=0, **{**described, "model": model}, format=attack or "full",
                             quantizer="none", bits=32, group_size="", attack=attack))
    table, _ = summarize(files, rows, [], {"news": None})
    return table, attack_verdicts(table, files, rows, {"news": SPLIT})


def _restored(model, items):
    """The unlearned model's B items back at the target's; the other models' unchanged."""
    if model != UNLEARNED["model"]:
        return items[model]
    return {m: np.where(np.arange(ITEMS) >= 10, items["target"][m], v) for m, v in items[model].items()}


def test_an_attack_that_restores_only_the_unlearned_models_held_out_items_is_recovered(tmp_path):
    table, result = _study(tmp_path, _restored)  # the retrain model's items stay put
    assert len(result) == 2 and set(result["corpus"]) == {"news", "all"}
    row = result.iloc[0]
    assert row["verdict"] == "recovered" and row["change_lo"] > 0.5
    assert row["retrain_change"] == 0 and row["unlearned_after"] == pytest.approx(1)
    assert row["change"] == pytest.approx(row["unlearned_change"]) == pytest.approx(1 - row["unlearned_before"])
    assert row["b_verbmem_items"] == row["b_knowmem_items"] == len(B)
    assert (result["attack"] == ATTACK).all() and (result["kind"] == "relearn").all()
    # the quantization headline and verdicts keep only unattacked rows
    assert model_verdicts(table).empty and set(headline(table)["quantizer"]) == {"none"}


def test_an_attack_that_moves_both_alike_on_b_is_kept_whatever_it_does_to_a(tmp_path):
    def both_up(model, items):  # +10 on every B item of both models (a fraction of the target's alike); A: anything
        moved = {m: v + 10 * (np.arange(ITEMS) >= 10) for m, v in items[model].items()}
        if model == UNLEARNED["model"]:
            moved = {m: np.where(np.arange(ITEMS) < 10, items["target"][m], v) for m, v in moved.items()}
        return moved

    _, result = _study(tmp_path, both_up)
    row = result.iloc[0]
    assert row["verdict"] == "kept" and row["change"] == pytest.approx(0, abs=1e-12)
    assert row["unlearned_change"] == pytest.approx(row["retrain_change"]) and row["retrain_change"] > 0.1
    assert (row["change_lo"], row["change_hi"]) == pytest.approx((0, 0), abs=1e-12)


def test_utility_changes_are_reported_on_every_retain_item(tmp_path):
    def forgets_the_retain_set(model, items):
        return {**items[model], "knowmem_r": items[model]["knowmem_r"] - 5}

    _, result = _study(tmp_path, forgets_the_retain_set)
    assert result["unlearned_utility_change"].tolist() == pytest.approx([-5, -5])
    assert result["retrain_utility_change"].tolist() == pytest.approx([-5, -5])


def test_no_attack_gives_an_empty_table_with_its_columns(tmp_path):
    table, result = _study(tmp_path, lambda model, items: items[model])
    none = attack_verdicts(table[table["attack"] == ""], [], [], {})
    assert none.empty and list(none.columns) == list(result.columns)
    assert isinstance(result, pd.DataFrame) and result.iloc[0]["verdict"] == "kept"


def test_a_metric_the_target_scores_0_on_in_half_b_is_left_out(tmp_path):
    def no_knowmem_in_b(items):  # the target answers none of B's KnowMem items
        target = items["target"]
        return {**items, "target": {**target, "knowmem_f": np.where(np.arange(ITEMS) >= 10, 0, target["knowmem_f"])}}

    _, both = _study(tmp_path / "both", _restored)
    _, verbmem = _study(tmp_path / "verbmem", _restored, no_knowmem_in_b)
    assert verbmem.iloc[0]["verdict"] == "recovered" and verbmem.iloc[0]["unlearned_after"] == pytest.approx(1)
    b_verbmem = (both.iloc[0]["unlearned_before"], verbmem.iloc[0]["unlearned_before"])
    assert b_verbmem[0] != pytest.approx(b_verbmem[1])  # VerbMem-f's fraction alone
    _, none = _study(tmp_path / "none", _restored, lambda items: no_knowmem_in_b(
        {**items, "target": {**items["target"], "verbmem_f": np.zeros(ITEMS)}}))
    assert none.iloc[0]["verdict"] == "undefined"
