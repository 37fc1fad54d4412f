import shutil

import pytest

from qunlearn.errors import QunlearnError
from qunlearn.muse import load_corpus


@pytest.fixture
def corpus_copy(corpus_dir, tmp_path):
    return shutil.copytree(corpus_dir, tmp_path / "copy")


def test_missing_folder(tmp_path):
    with pytest.raises(QunlearnError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_missing_file_is_named(corpus_copy):
    (corpus_copy / "knowmem/retain_qa.json").unlink()
    with pytest.raises(QunlearnError, match="missing knowmem/retain_qa.json"):
        load_corpus(corpus_copy)


def test_malformed_json_is_named(corpus_copy):
    (corpus_copy / "raw/holdout.json").write_text('["a", ')
    with pytest.raises(QunlearnError, match=r"malformed JSON in .*raw/holdout.json"):
        load_corpus(corpus_copy)


def test_record_without_field_is_named(corpus_copy):
    (corpus_copy / "verbmem/forget.json").write_text('[{"prompt": "a", "gt": "b"}, {"prompt": "c"}]')
    with pytest.raises(QunlearnError, match=r"verbmem/forget.json: record 1 lacks"):
        load_corpus(corpus_copy)


def test_empty_split_is_refused(corpus_copy):
    (corpus_copy / "privleak/holdout.json").write_text("[]")
    with pytest.raises(QunlearnError, match=r"privleak/holdout.json must hold a non-empty JSON list"):
        load_corpus(corpus_copy)
