"""Load a MUSE corpus (docs/paper.md §2) from a local folder, in whichever layout MUSE is distributed in.

- `muse-json`: MUSE's GitHub layout (`raw/forget.json`, `knowmem/forget_qa.json`, ...); the embedded benchmark
  writes it too.
- `hub-parquet`: a snapshot of the Hugging Face dataset muse-bench/MUSE-News or MUSE-Books as `hf download
  --repo-type dataset --local-dir` (or the hub cache) leaves it: a README.md whose YAML `configs:` map each
  config's splits to parquet files (`raw/forget-00000-of-00001.parquet`).
- `save-to-disk`: one folder per config, each written by `datasets`' `DatasetDict.save_to_disk`
  (`raw/dataset_dict.json`, `raw/forget/state.json`, ...).

MUSE's revisions named two splits differently (knowmem `retain2_qa`/`retain2_qa_icl` for `retain_qa`/`retain_qa_icl`,
privleak `retain2` for `retain`) and some JSON copies use hyphens (`knowmem/forget-qa.json`): each maps to
qunlearn's name, and the names a snapshot had are kept in `MuseCorpus.layout`, which the metrics record.
"""

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from qunlearn.errors import QunlearnError
from qunlearn.io import read_json

log = logging.getLogger(__name__)

RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")
QA_SPLITS = ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")
PRIVLEAK_SPLITS = ("forget", "retain", "holdout")
# Every (config, split) a corpus needs, in qunlearn's (and today's MUSE's) names.
PARTS = (*(("raw", s) for s in RAW_SPLITS), ("verbmem", "forget"), *(("knowmem", s) for s in QA_SPLITS),
         *(("privleak", s) for s in PRIVLEAK_SPLITS))
# The names earlier revisions of MUSE's data gave a split, after today's.
OLDER_NAMES = {("knowmem", "retain_qa"): ("retain2_qa",), ("knowmem", "retain_qa_icl"): ("retain2_qa_icl",),
               ("privleak", "retain"): ("retain2",)}
RECORD_FIELDS = {"verbmem": ("prompt", "gt"), "knowmem": ("question", "answer")}  # raw and privleak: texts
REFETCH = "download the dataset again (docs/scaling.md: hf download --repo-type dataset muse-bench/MUSE-News ...)"


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class CorpusLayout:
    """Where a corpus was read from: the layout detected and the snapshot's names of the splits revisions renamed."""
    layout: str
    utility_split: str  # knowmem's retain_qa, or the older revisions' retain2_qa
    privleak_retain: str  # privleak's retain, or retain2


@dataclass(frozen=True)
class MuseCorpus:
    root: Path
    raw: dict[str, list[str]]
    verbmem: list[tuple[str, str]]  # (prompt, gt)
    knowmem: dict[str, list[QA]]  # forget_qa, retain_qa, forget_qa_icl, retain_qa_icl
    privleak: dict[str, list[str]]  # forget, retain, holdout
    layout: CorpusLayout | None = field(default=None, compare=False)  # provenance, not content


def split_names(config: str, split: str) -> tuple[str, ...]:
    """The names a split may have in a snapshot, today's first."""
    return (split, *OLDER_NAMES.get((config, split), ()))


class _Snapshot:
    """One layout: where each split lives, and how to read it as a list of texts or records. Subclasses give
    `_where` (a split's location, or None), `_expected` (what was looked for) and `read` (a label for messages and
    the items)."""

    layout = ""
    fix = ""  # what to do when a split is missing

    def __init__(self, root: Path):
        self.root = root

    def locate(self, config: str, split: str) -> tuple[str, object]:
        """The snapshot's name for the split and where it is; an error naming what is missing and the layout."""
        for name in split_names(config, split):
            where = self._where(config, name)
            if where is not None:
                return name, where
        raise QunlearnError(
            f"MUSE corpus at {self.root} ({self.layout} layout) is missing {self._expected(config, split)}", self.fix)

    @contextlib.contextmanager
    def opened(self):
        """Around the reads of one corpus."""
        yield


class _JsonSnapshot(_Snapshot):
    layout = "muse-json"
    fix = "point the corpus `path` at a MUSE folder in a layout of docs/scaling.md, or regenerate the embedded corpus"

    @staticmethod
    def _files(config: str, name: str) -> list[str]:
        return list(dict.fromkeys(f"{config}/{spelling}.json" for spelling in (name, name.replace("_", "-"))))

    def _where(self, config, name):
        return next((f for f in self._files(config, name) if (self.root / f).is_file()), None)

    def _expected(self, config, split):
        files = [f for name in split_names(config, split) for f in self._files(config, name)]
        return files[0] + (f" (nor {', '.join(files[1:])})" if len(files) > 1 else "")

    def read(self, where):
        data = read_json(self.root / where)
        if not isinstance(data, list):
            raise QunlearnError(f"{self.root / where} must hold a JSON list", "fix or regenerate the file")
        return str(self.root / where), data


class _DatasetsSnapshot(_Snapshot):
    """A layout read with `datasets`, offline."""

    @contextlib.contextmanager
    def opened(self):
        with _offline_datasets() as (self.datasets, self.cache):
            yield


class _HubSnapshot(_DatasetsSnapshot):
    """Files from README.md's `configs:` (each a split's glob, e.g. raw/forget-*), read as parquet."""

    layout = "hub-parquet"
    fix = REFETCH

    def __init__(self, root: Path, configs: dict[str, dict[str, list[str]]]):
        super().__init__(root)
        self.configs = configs

    def _where(self, config, name):
        patterns = self.configs.get(config, {}).get(name)
        if patterns is None:
            return None
        files = sorted({path for pattern in patterns for path in self.root.glob(pattern) if path.is_file()})
        if not files:
            raise QunlearnError(f"MUSE corpus at {self.root} ({self.layout} layout) is missing {', '.join(patterns)}: "
                                f"no file matches what README.md's configs give for {config}/{name}", REFETCH)
        return files

    def _expected(self, config, split):
        names = " or ".join(split_names(config, split))
        return f"{config}/{split}: README.md's configs map no split {names} of config {config}"

    def read(self, where):
        label = ", ".join(str(path.relative_to(self.root)) for path in where)
        # A list of files is loaded as one split, which `datasets` names "train".
        dataset = self.datasets.load_dataset("parquet", data_files=[str(path) for path in where], split="train",
                                             cache_dir=self.cache)
        return f"{self.root}/{label}", dataset.to_list()


class _DiskSnapshot(_DatasetsSnapshot):
    """CONFIG/SPLIT folders as `save_to_disk` writes them (a DatasetDict per config, or a Dataset per split)."""

    layout = "save-to-disk"
    fix = ("save each config with DatasetDict.save_to_disk(PATH/CONFIG), e.g. "
           "load_dataset('muse-bench/MUSE-News', 'knowmem').save_to_disk('PATH/knowmem')")

    def _where(self, config, name):
        folder = self.root / config / name
        return folder if (folder / "state.json").is_file() else None

    def _expected(self, config, split):
        names = " or ".join(f"{config}/{name}/" for name in split_names(config, split))
        return f"{names} (a save_to_disk folder with state.json)"

    def read(self, where):
        return str(where), self.datasets.load_from_disk(str(where)).to_list()


@contextlib.contextmanager
def _offline_datasets():
    """`datasets`, never reaching the network, and a cache folder for it outside the user's snapshot, deleted
    afterwards."""
    saved_environment = {name: os.environ.get(name) for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    import datasets

    # The variables are read when `datasets` is first imported; a job that imported it earlier (llmcompressor does)
    # needs its flag set as well.
    hub_offline, datasets.config.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE, True
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Generating split" bars would only fill the job's log
    try:
        with tempfile.TemporaryDirectory(prefix="qunlearn-datasets-") as cache:
            yield datasets, cache
    finally:  # as it was: a notebook that loads a corpus keeps its own settings
        datasets.config.HF_HUB_OFFLINE = hub_offline
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if bars_were_on:
            datasets.enable_progress_bars()


def _card_configs(root: Path) -> dict[str, dict[str, list[str]]] | None:
    """config -> split -> file globs, from the YAML front matter of a dataset card (README.md); None without one."""
    card = root / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import metadata_load
    from yaml import YAMLError

    try:
        metadata = metadata_load(card) or {}
    except YAMLError as error:
        raise QunlearnError(f"{card}: malformed YAML front matter ({error})", REFETCH) from None
    configs = metadata.get("configs") if isinstance(metadata, dict) else None
    if not isinstance(configs, list):
        return None
    return {
        entry["config_name"]: {
            data_file["split"]: [data_file["path"]] if isinstance(data_file["path"], str) else list(data_file["path"])
            for data_file in entry.get("data_files", [])
            if isinstance(data_file, dict) and {"split", "path"} <= data_file.keys()
        }
        for entry in configs
        if isinstance(entry, dict) and "config_name" in entry
    }


def _detect_layout(root: Path) -> _Snapshot:
    """A dataset card with `configs:` makes a hub snapshot; CONFIG/SPLIT/state.json folders a save_to_disk one;
    anything else is read as MUSE's JSON files."""
    configs = _card_configs(root)
    if configs is not None:
        return _HubSnapshot(root, configs)
    if any(root.glob("*/dataset_dict.json")) or any(root.glob("*/*/state.json")):
        return _DiskSnapshot(root)
    return _JsonSnapshot(root)


def _nonempty(label: str, items: list) -> list:
    if not items:
        raise QunlearnError(f"{label} must hold a non-empty list", "fix the file, or download or regenerate the corpus")
    return items


def _texts(label: str, items: list) -> list[str]:
    """Strings, or records with a string `text` (as parquet and save_to_disk store them)."""
    texts = [item.get("text") if isinstance(item, dict) else item for item in _nonempty(label, items)]
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise QunlearnError(f"{label}: record {index} is {type(items[index]).__name__}, expected a string or a "
                                "record with a string `text`", "fix the file, or download the corpus again")
    return texts


def _records(label: str, items: list, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    rows = []
    for index, item in enumerate(_nonempty(label, items)):
        if not isinstance(item, dict) or any(not isinstance(item.get(f), str) for f in fields):
            raise QunlearnError(f"{label}: record {index} lacks a string field among {list(fields)}",
                                "fix the file, or download the corpus again")
        rows.append(tuple(item[f] for f in fields))
    return rows


def _verbmem(label: str, items: list) -> list[tuple[str, str]]:
    """MUSE's evaluation (swj0419/muse_bench, eval.py and load_data.py at fcd6651) reads `prompt` and `gt` and no code
    of MUSE's builds them from a document, so a revision that stores VerbMem's texts only (MUSE-News and MUSE-Books in
    June 2024) is refused rather than cut by a rule MUSE never stated."""
    first = items[0] if items else None
    if isinstance(first, str) or (isinstance(first, dict) and "text" in first and "prompt" not in first):
        raise QunlearnError(
            f"{label} holds VerbMem's texts only, without the `prompt` and `gt` MUSE's evaluation reads (a June 2024 "
            "revision of MUSE's data); MUSE's code states no rule for cutting them from a text",
            "download the dataset's current revision (hf download --repo-type dataset muse-bench/MUSE-News --revision "
            "main ...), whose verbmem has prompt and gt",
        )
    return _records(label, items, RECORD_FIELDS["verbmem"])


def load_corpus(root: str | Path) -> MuseCorpus:
    """Detect the layout, read and check every split; the error names the first missing or malformed file and
    record, and the layout it was read as."""
    root = Path(root)
    if not root.is_dir():
        raise QunlearnError(f"corpus folder {root} does not exist", "set the corpus `path` in the config to a MUSE folder")
    snapshot = _detect_layout(root)
    parts, names = {}, {}
    with snapshot.opened():
        for config, split in PARTS:
            names[config, split], where = snapshot.locate(config, split)
            label, items = snapshot.read(where)
            if config == "verbmem":
                parts[config, split] = _verbmem(label, items)
            elif config == "knowmem":
                parts[config, split] = [QA(*row) for row in _records(label, items, RECORD_FIELDS[config])]
            else:
                parts[config, split] = _texts(label, items)
    layout = CorpusLayout(snapshot.layout, names["knowmem", "retain_qa"], names["privleak", "retain"])
    log.info("corpus at %s: %s layout (utility split %s, privleak retain split %s)", root, layout.layout,
             layout.utility_split, layout.privleak_retain)
    return MuseCorpus(
        root=root,
        raw={split: parts["raw", split] for split in RAW_SPLITS},
        verbmem=parts["verbmem", "forget"],
        knowmem={split: parts["knowmem", split] for split in QA_SPLITS},
        privleak={split: parts["privleak", split] for split in PRIVLEAK_SPLITS},
        layout=layout,
    )
