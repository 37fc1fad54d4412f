"""Load a corpus in MUSE's file layout (REFERENCE.md §2): the embedded benchmark or a real MUSE download."""

from dataclasses import dataclass
from pathlib import Path

from .errors import QunlearnError
from .io import read_json

RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class MuseCorpus:
    root: Path
    raw: dict[str, list[str]]
    verbmem: list[tuple[str, str]]  # (prompt, gt)
    knowmem: dict[str, list[QA]]  # forget_qa, retain_qa, forget_qa_icl, retain_qa_icl
    privleak: dict[str, list[str]]  # forget, retain, holdout


def _load_list(root: Path, relative: str) -> list:
    path = root / relative
    if not path.is_file():
        raise QunlearnError(
            f"MUSE corpus at {root} is missing {relative}",
            "point the corpus `path` at a folder in MUSE's layout (docs/scaling.md), or regenerate the embedded corpus",
        )
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise QunlearnError(f"{path} must hold a non-empty JSON list", "fix or regenerate the file")
    return data


def _strings(root: Path, relative: str) -> list[str]:
    data = _load_list(root, relative)
    for index, item in enumerate(data):
        if not isinstance(item, str):
            raise QunlearnError(f"{root / relative}: record {index} is {type(item).__name__}, expected a string")
    return data


def _records(root: Path, relative: str, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    data = _load_list(root, relative)
    rows = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or any(not isinstance(item.get(f), str) for f in fields):
            raise QunlearnError(f"{root / relative}: record {index} lacks a string field among {list(fields)}")
        rows.append(tuple(item[f] for f in fields))
    return rows


def load_corpus(root: str | Path) -> MuseCorpus:
    """Read and check every file; the error names the first missing or malformed file and record."""
    root = Path(root)
    if not root.is_dir():
        raise QunlearnError(f"corpus folder {root} does not exist", "set the corpus `path` in the config to a MUSE folder")
    knowmem = {
        name: [QA(*row) for row in _records(root, f"knowmem/{name}.json", ("question", "answer"))]
        for name in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")
    }
    return MuseCorpus(
        root=root,
        raw={split: _strings(root, f"raw/{split}.json") for split in RAW_SPLITS},
        verbmem=_records(root, "verbmem/forget.json", ("prompt", "gt")),
        knowmem=knowmem,
        privleak={split: _strings(root, f"privleak/{split}.json") for split in ("forget", "retain", "holdout")},
    )
