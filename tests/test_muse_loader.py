import dataclasses
import logging
import shutil
import socket

import pytest
import yaml
from muse_snapshots import OLDER, write_hub_parquet, write_muse_json, write_save_to_disk

from qunlearn.data.muse import CorpusLayout, load_corpus
from qunlearn.errors import QunlearnError
from qunlearn.io import write_json


@pytest.fixture
def corpus_copy(corpus_dir, tmp_path):
    return shutil.copytree(corpus_dir, tmp_path / "copy")


@pytest.fixture(scope="session")
def embedded(corpus_dir):
    return load_corpus(corpus_dir)


def _content(corpus):
    return dataclasses.replace(corpus, root=None)


SNAPSHOTS = {  # fixture name -> how it is written, and the layout and names the loader should report
    "hub-today": (lambda c, out: write_hub_parquet(c, out), CorpusLayout("hub-parquet", "retain_qa", "retain")),
    "hub-older": (lambda c, out: write_hub_parquet(c, out, OLDER), CorpusLayout("hub-parquet", "retain2_qa", "retain2")),
    "save-to-disk": (lambda c, out: write_save_to_disk(c, out), CorpusLayout("save-to-disk", "retain_qa", "retain")),
    "save-to-disk-older": (lambda c, out: write_save_to_disk(c, out, OLDER),
                           CorpusLayout("save-to-disk", "retain2_qa", "retain2")),
    "json": (lambda c, out: write_muse_json(c, out), CorpusLayout("muse-json", "retain_qa", "retain")),
    "json-older": (lambda c, out: write_muse_json(c, out, OLDER), CorpusLayout("muse-json", "retain2_qa", "retain2")),
    "json-hyphens": (lambda c, out: write_muse_json(c, out, OLDER, hyphens=True),
                     CorpusLayout("muse-json", "retain2_qa", "retain2")),
}


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_every_layout_loads_the_same_corpus(embedded, tmp_path, snapshot, caplog):
    write, layout = SNAPSHOTS[snapshot]
    out = write(embedded, tmp_path / snapshot)
    with caplog.at_level(logging.INFO, logger="qunlearn.data.muse"):
        loaded = load_corpus(out)
    assert _content(loaded) == _content(embedded)
    assert loaded.layout == layout
    assert f"{layout.layout} layout" in caplog.text  # the run's log names what was detected


def test_the_embedded_corpus_is_read_as_museS_json_files(embedded):
    assert embedded.layout == CorpusLayout("muse-json", "retain_qa", "retain")
    assert len(embedded.knowmem["retain_qa_icl"]) == 10 and embedded.verbmem[0][0]


def test_the_dataset_card_decides_over_json_copies(embedded, tmp_path):
    """Revisions of the hub dataset carry JSON copies beside the parquet files (knowmem/forget-qa.json): the
    card's configs are what is read. The copies here hold other records, so reading them would show."""
    out = write_hub_parquet(embedded, tmp_path / "hub", OLDER)
    write_json(out / "knowmem/forget-qa.json", [{"question": "decoy?", "answer": "decoy"}])
    write_json(out / "raw/forget.json", ["decoy"])
    assert _content(load_corpus(out)) == _content(embedded)


def test_a_hub_cache_snapshot_of_symlinks_loads(embedded, tmp_path):
    """The hub cache (~/.cache/huggingface/hub/datasets--muse-bench--MUSE-News/snapshots/REV) holds links to blobs."""
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    snapshot, blobs = tmp_path / "cache/snapshots/rev", tmp_path / "cache/blobs"
    blobs.mkdir(parents=True)
    for number, path in enumerate(sorted(p for p in hub.rglob("*") if p.is_file())):
        blob = shutil.copy(path, blobs / str(number))
        (snapshot / path.relative_to(hub)).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / path.relative_to(hub)).symlink_to(blob)
    assert _content(load_corpus(snapshot)) == _content(embedded)


def test_loading_never_reaches_the_network_nor_writes_into_the_snapshot(embedded, tmp_path, monkeypatch):
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    disk = write_save_to_disk(embedded, tmp_path / "disk")
    before = {folder: sorted(folder.rglob("*")) for folder in (hub, disk)}
    attempts = []

    def refuse(sock, address):
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for folder in (hub, disk):
        assert _content(load_corpus(folder)) == _content(embedded)
    assert attempts == []
    assert {folder: sorted(folder.rglob("*")) for folder in (hub, disk)} == before  # no cache, no lock files


def test_loads_are_deterministic(embedded, tmp_path):
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    first, second = load_corpus(hub), load_corpus(hub)
    assert first.raw == second.raw and first.raw["holdout"] == embedded.raw["holdout"]  # same order too


def test_missing_parquet_file_names_the_file_and_the_layout(embedded, tmp_path):
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    (hub / "knowmem/retain_qa-00000-of-00001.parquet").unlink()
    with pytest.raises(QunlearnError, match=r"\(hub-parquet layout\) is missing knowmem/retain_qa-\*: no file matches"):
        load_corpus(hub)


def test_split_absent_from_the_card_names_the_split_and_the_layout(embedded, tmp_path):
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    card = hub / "README.md"
    metadata = yaml.safe_load(card.read_text().split("---")[1])
    privleak = next(c for c in metadata["configs"] if c["config_name"] == "privleak")
    privleak["data_files"] = [f for f in privleak["data_files"] if f["split"] != "holdout"]
    card.write_text(f"---\n{yaml.safe_dump(metadata)}---\n")
    with pytest.raises(QunlearnError, match=r"\(hub-parquet layout\) is missing privleak/holdout: README.md's configs "
                                            r"map no split holdout of config privleak"):
        load_corpus(hub)


def test_missing_save_to_disk_split_names_the_folder_and_the_layout(embedded, tmp_path):
    disk = write_save_to_disk(embedded, tmp_path / "disk")
    shutil.rmtree(disk / "privleak/retain")
    with pytest.raises(QunlearnError, match=r"\(save-to-disk layout\) is missing privleak/retain/ or privleak/retain2/"):
        load_corpus(disk)


def test_verbmem_with_texts_only_is_refused(embedded, tmp_path):
    """MUSE's June 2024 revisions stored VerbMem as `text`; MUSE's code states no rule to cut prompt and gt."""
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    from datasets import Dataset

    Dataset.from_dict({"text": embedded.privleak["forget"]}).to_parquet(str(hub / "verbmem/forget-00000-of-00001.parquet"))
    with pytest.raises(QunlearnError, match=r"(?s)verbmem/forget-00000-of-00001.parquet holds VerbMem's texts only.*"
                                            r"--revision main"):
        load_corpus(hub)


def test_malformed_card_is_named(embedded, tmp_path):
    hub = write_hub_parquet(embedded, tmp_path / "hub")
    (hub / "README.md").write_text("---\nconfigs: [unclosed\n---\n")
    with pytest.raises(QunlearnError, match=r"README.md: malformed YAML front matter"):
        load_corpus(hub)


def test_missing_folder(tmp_path):
    with pytest.raises(QunlearnError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_missing_file_is_named(corpus_copy):
    (corpus_copy / "knowmem/retain_qa.json").unlink()
    with pytest.raises(QunlearnError, match=r"\(muse-json layout\) is missing knowmem/retain_qa.json \(nor "
                                            r"knowmem/retain-qa.json, knowmem/retain2_qa.json, knowmem/retain2-qa.json\)"):
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
    with pytest.raises(QunlearnError, match=r"privleak/holdout.json must hold a non-empty list"):
        load_corpus(corpus_copy)
