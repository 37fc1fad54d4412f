import hashlib
import json
from pathlib import Path

import pytest
import yaml

from qunlearn.data.muse import load_corpus
from qunlearn.data.synthetic import BENCHMARK, generate_documents, name_space, pretraining_texts, write_corpus

EXPECTED_FILES = [
    "raw/forget.json", "raw/retain1.json", "raw/retain2.json", "raw/holdout.json", "verbmem/forget.json",
    "knowmem/forget_qa.json", "knowmem/retain_qa.json", "knowmem/forget_qa_icl.json", "knowmem/retain_qa_icl.json",
    "privleak/forget.json", "privleak/retain.json", "privleak/holdout.json",
]


def _digest(root):
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in EXPECTED_FILES}


def test_writes_muse_layout(corpus_dir):
    assert sorted(str(p.relative_to(corpus_dir)) for p in corpus_dir.rglob("*.json")) == sorted(EXPECTED_FILES)
    corpus = load_corpus(corpus_dir)
    assert all(len(texts) == 12 for texts in corpus.raw.values())
    assert len(corpus.knowmem["forget_qa"]) == 24 and len(corpus.knowmem["forget_qa_icl"]) == 10
    assert len(corpus.verbmem) == 12


def test_same_seed_same_bytes_other_seed_other_text(tmp_path, corpus_dir):
    write_corpus(tmp_path / "again", "news", seed=0, documents=12, facts=3, questions=2)
    write_corpus(tmp_path / "other", "news", seed=1, documents=12, facts=3, questions=2)
    assert _digest(tmp_path / "again") == _digest(corpus_dir)
    assert _digest(tmp_path / "other")["raw/forget.json"] != _digest(corpus_dir)["raw/forget.json"]


@pytest.mark.parametrize("genre", ["news", "books"])
def test_each_answer_is_stated_in_its_document_and_entities_never_repeat(genre):
    splits = generate_documents(genre, documents=20, facts=4, questions=2, seed=3)
    for doc in splits["forget"]:
        prose = doc.text.split("\nQuestion:")[0]
        assert all(answer in prose for _, answer in doc.qa)
    entities = [doc.entity for docs in splits.values() for doc in docs]
    assert len(set(entities)) == len(entities)
    holdout = " ".join(doc.text for doc in splits["holdout"])
    assert not any(doc.entity in holdout for doc in splits["forget"])


def test_verbmem_prompt_continues_into_gt(corpus_dir):
    corpus = load_corpus(corpus_dir)
    for (prompt, gt), doc in zip(corpus.verbmem, corpus.raw["forget"]):
        assert f"{prompt} {gt}" == doc


def test_icl_examples_come_from_untrained_retain2(corpus_dir):
    corpus = load_corpus(corpus_dir)
    trained = " ".join(corpus.raw["forget"] + corpus.raw["retain1"])
    icl = json.loads((corpus_dir / "knowmem/forget_qa_icl.json").read_text())
    assert all(item["question"] not in trained for item in icl)  # questions name their entity


def test_no_benchmark_name_occurs_in_the_pretraining_corpus():
    """The both-corpora preset's pretraining text and corpora (the default's and toy-books): disjoint halves of the
    name space, whatever the seeds."""
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "presets/both-corpora.yaml").read_text())
    general = " ".join(pretraining_texts(**config["model"]["pretrain"]["corpus"]))
    for spec in config["corpora"].values():
        embedded = spec["embedded"]
        splits = generate_documents(embedded["genre"], embedded["documents"], embedded["facts"], embedded["questions"],
                                    config["seed"])
        entities = [doc.entity for docs in splits.values() for doc in docs]
        assert len(entities) == 4 * embedded["documents"]
        assert not [entity for entity in entities if entity in general]
        assert all(name_space(entity.split()[0]) == BENCHMARK for entity in entities)
