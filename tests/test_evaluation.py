"""Batched evaluation against one-at-a-time generation, on a tiny random model and a real tokenizer."""

import collections
import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.data.muse import load_corpus
from qunlearn.data.tokenizer import train_tokenizer
from qunlearn.errors import QunlearnError
from qunlearn.evaluate.evaluator import evaluate, generate
from qunlearn.evaluate.metrics import KNOWMEM_STOPS, cut_answer, icl_prefix, knowmem_prompt
from qunlearn.evaluate.oracle import reference_evaluate
from qunlearn.models.checkpoints import load_tokenizer


@pytest.fixture(scope="module")
def setup(corpus_dir, tmp_path_factory):
    corpus = load_corpus(corpus_dir)
    out = tmp_path_factory.mktemp("tok") / "tok"
    train_tokenizer([t for split in corpus.raw.values() for t in split], 400, out)
    tokenizer = load_tokenizer(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval(), tokenizer, corpus


def _generated_ids(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers' own greedy generation, one prompt at a time, with the model's EOS."""
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return output[0, input_ids.shape[1] :].tolist()


def test_tokenizer_adds_bos_and_splits_spaces(setup):
    _, tokenizer, _ = setup
    ids = tokenizer("Answer: x")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer("Answer: ")["input_ids"] == ids[:-1]  # "Answer: " ends at a token boundary


def test_batched_prefix_cached_generation_equals_one_at_a_time(setup):
    model, tokenizer, corpus = setup
    icl = [(qa.question, qa.answer) for qa in corpus.knowmem["forget_qa_icl"]]
    prompts = [knowmem_prompt(icl, qa.question) for qa in corpus.knowmem["forget_qa"][:8]]
    batched = generate(model, tokenizer, prompts, 12, 8, "test", KNOWMEM_STOPS, icl_prefix(icl))
    single = [generate(model, tokenizer, [p], 12, 1, "test")[0] for p in prompts]
    assert [cut_answer(b) for b in batched] == [cut_answer(s) for s in single]


def test_rows_that_end_early_leave_the_batch_without_changing_the_others(setup, monkeypatch):
    model, tokenizer, corpus = setup
    prompts = [prompt for prompt, _ in corpus.verbmem[:8]]
    free_runs = [set(_generated_ids(model, tokenizer, p, 16)[1:]) for p in prompts]
    # An EOS that some rows produce mid-way and others never: rows leave the batch at different steps.
    counts = collections.Counter(token for run in free_runs for token in run)
    eos = next(token for token, count in counts.most_common() if count < len(prompts))
    monkeypatch.setattr(model.generation_config, "eos_token_id", eos)
    batched = generate(model, tokenizer, prompts, 16, 8, "test")
    single = [tokenizer.decode(_generated_ids(model, tokenizer, p, 16), skip_special_tokens=True) for p in prompts]
    assert batched == single
    assert len({len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in batched}) > 1


def test_evaluate_reports_every_metric_and_mink_score(setup):
    model, tokenizer, corpus = setup
    result = evaluate(model, tokenizer, corpus, batch_size=16, mink_k=0.4)
    assert all(0 <= result[m] <= 100 for m in ("verbmem_f", "knowmem_f", "knowmem_r"))
    assert 0 <= result["privleak_auc"] <= 1
    assert len(result["mink"]["forget"]["0.4"]) == len(corpus.privleak["forget"])
    assert set(result["mink"]["holdout"]) == {"0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6"}


def test_batched_evaluation_matches_the_one_at_a_time_reference(setup):
    model, tokenizer, full = setup
    # A slice keeps the one-at-a-time reference quick; padding still differs within every batch.
    corpus = dataclasses.replace(
        full,
        verbmem=full.verbmem[:4],
        knowmem={name: qa if name.endswith("icl") else qa[:6] for name, qa in full.knowmem.items()},
        privleak={split: texts[:5] for split, texts in full.privleak.items()},
    )
    batched = evaluate(model, tokenizer, corpus, batch_size=16, mink_k=0.4)
    reference = reference_evaluate(model, tokenizer, corpus, mink_k=0.4)
    for metric in ("verbmem_f", "knowmem_f", "knowmem_r"):
        assert batched["outputs"][metric] == reference["outputs"][metric], metric
        assert batched[metric] == pytest.approx(reference[metric], abs=0.5)
        items = batched["items"][metric]  # the per-item scores a bootstrap resamples
        assert len(items) == len(batched["outputs"][metric]) and sum(items) / len(items) == pytest.approx(batched[metric])
    for split in ("forget", "holdout"):
        assert batched["mink"][split]["0.4"] == pytest.approx(reference["mink"][split]["0.4"], abs=1e-4)
    assert batched["privleak_auc"] == pytest.approx(reference["privleak_auc"], abs=0.01)


def test_every_embedded_evaluation_prompt_plus_its_new_tokens_fits_the_training_length(tmp_path):
    """Both embedded corpora (the default's toy-news and the both-corpora preset's toy-books), tokenized by the
    tokenizer the runs train on their pretraining text."""
    import yaml

    from qunlearn.data.synthetic import pretraining_texts, write_corpus
    from qunlearn.evaluate.evaluator import check_prompts_fit, longest_evaluation_sequences

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "presets/both-corpora.yaml").read_text())
    train_tokenizer(pretraining_texts(**config["model"]["pretrain"]["corpus"]), config["tokenizer"]["vocab_size"],
                    tmp_path / "tokenizer")
    tokenizer = load_tokenizer(tmp_path / "tokenizer")
    train_len = config["model"]["train_len"]
    for name, spec in config["corpora"].items():
        write_corpus(tmp_path / name, seed=config["seed"], **spec["embedded"])
        corpus = load_corpus(tmp_path / name)
        lengths = longest_evaluation_sequences(tokenizer, corpus)
        assert max(lengths.values()) <= train_len, (name, lengths)
        assert lengths["knowmem_f"] > 128 + 32  # a real 10-shot prompt, not an empty one
        check_prompts_fit(tokenizer, corpus, train_len, name)
        with pytest.raises(QunlearnError, match=rf"corpus {name}: .*past the 256 positions.*model.train_len"):
            check_prompts_fit(tokenizer, corpus, 256, name)


def test_verbmem_reference_is_muses_first_128_tokens_bos_included(toy_tokenizer):
    """MUSE cuts the tokenized ground truth, BOS included, at 128 tokens: 127 content tokens."""
    from qunlearn.data.muse import MuseCorpus
    from qunlearn.evaluate.evaluator import verbmem_references
    from qunlearn.evaluate.oracle import muse_verbmem_reference

    ground_truth = " ".join(f"word{i % 7} and" for i in range(200))
    content = toy_tokenizer(ground_truth, add_special_tokens=False)["input_ids"]
    assert len(content) > 200
    expected = toy_tokenizer.decode(content[:127])
    corpus = MuseCorpus(root=Path("."), raw={}, verbmem=[("prompt", ground_truth)], knowmem={}, privleak={})
    assert verbmem_references(toy_tokenizer, corpus) == [expected]
    assert muse_verbmem_reference(toy_tokenizer, ground_truth) == expected
