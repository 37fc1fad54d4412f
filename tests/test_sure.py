import pytest
import torch

from qunlearn.data.muse import load_corpus
from qunlearn.models.training import build_llama
from qunlearn.unlearn.loop import UnlearnSettings, forgets_like_retrain, unlearn
from qunlearn.unlearn.sure import SureSettings, salient_modules


def _model(tokenizer):
    return build_llama(len(tokenizer), 32, 2, 2, 64, 128, tokenizer, seed=0)


def _settings(method, mask="per_step", **changes):
    values = dict(method=method, lr=1e-3, epochs=1, batch_size=4, max_len=64, alpha=1.0, beta=0.1, precision="fp32",
                  seed=0, sure=SureSettings(gamma=90, mask=mask))
    return UnlearnSettings(**{**values, **changes})


def _modules(model) -> dict[str, list[torch.Tensor]]:
    weights = {}
    for name, param in model.named_parameters():
        weights.setdefault(name.rsplit(".", 1)[0], []).append(param.detach().clone())
    return weights


def test_salient_modules_are_those_at_or_above_the_percentile():
    norms = {f"m{i}": float(i) for i in range(1, 11)}  # 90th percentile of 1..10 is 9.1
    assert salient_modules(norms, 90) == {"m10"}
    assert salient_modules(norms, 0) == set(norms)


@pytest.mark.parametrize("mask", ["per_step", "once"])
@pytest.mark.parametrize("method", ["ga_klr_sure", "npo_gdr_sure"])
def test_sure_moves_salient_modules_only(corpus_dir, toy_tokenizer, method, mask):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer)
    before = _modules(model)
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"], corpus.raw["retain1"], _settings(method, mask))
    after = _modules(model)
    chosen = {module for module, fraction in record["sure_modules"].items() if fraction > 0}
    assert 0 < len(chosen) < len(before) / 2 and set(record["sure_modules"]) == set(before)
    for module, tensors in before.items():
        unchanged = all(torch.equal(a, b) for a, b in zip(tensors, after[module]))
        assert unchanged == (module not in chosen), module  # weight decay and Adam state included
    if mask == "once":
        assert set(record["sure_modules"].values()) == {0.0, 1.0}


def test_without_sure_every_module_moves(corpus_dir, toy_tokenizer):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer)
    before = _modules(model)
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"], corpus.raw["retain1"], _settings("ga_klr", sure=None))
    after = _modules(model)
    assert "sure_modules" not in record
    assert not any(all(torch.equal(a, b) for a, b in zip(before[m], after[m])) for m in before)


def test_epoch_metrics_and_muse_checkpoint_rule_stop_early(corpus_dir, toy_tokenizer):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer)
    values = iter([30.0, 20.0, 10.0, 5.0])
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"], corpus.raw["retain1"],
                     _settings("ga_gdr", sure=None, epochs=4), lambda m: {"knowmem_f": next(values)},
                     forgets_like_retrain(20.0))
    assert [r["knowmem_f"] for r in record["history"]] == [30.0, 20.0]  # the earliest epoch at or below 20
    assert record["epochs_run"] == 2 and not record["diverged"]


def test_epoch_metrics_every_nth_epoch_and_the_last(corpus_dir, toy_tokenizer):
    corpus = load_corpus(corpus_dir)
    values = iter([30.0, 20.0])
    record = unlearn(_model(toy_tokenizer), toy_tokenizer, corpus.raw["forget"], corpus.raw["retain1"],
                     _settings("ga_gdr", sure=None, epochs=5), lambda m: {"knowmem_f": next(values)},
                     forgets_like_retrain(0.0), measure_every=3)
    assert [r.get("knowmem_f") for r in record["history"]] == [None, None, 30.0, None, 20.0]


def test_a_huge_learning_rate_diverges_cleanly(corpus_dir, toy_tokenizer):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer)
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"], corpus.raw["retain1"],
                     _settings("ga", sure=None, lr=1e4, epochs=30))
    assert record["diverged"] and record["diverged_epoch"] == record["epochs_run"] + 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
