"""Fixture snapshots: one MUSE corpus written in each layout MUSE is distributed in, for qunlearn.data.muse to read back.

The hub snapshot mirrors muse-bench/MUSE-News as `hf download --repo-type dataset` leaves it: a README.md whose
YAML front matter has `dataset_info:` and `configs:` (each split a glob, `raw/forget-*`), and parquet files
`CONFIG/SPLIT-00000-of-00001.parquet` written by `datasets`, as the hub's own are; with `OLDER` names, the
June 2024 revisions' knowmem `retain2_qa`/`retain2_qa_icl` and privleak `retain2`.
"""

from pathlib import Path

import yaml
from datasets import Dataset, DatasetDict

from qunlearn.data.muse import PARTS, MuseCorpus
from qunlearn.io import write_json, write_text

TODAY: dict[tuple[str, str], str] = {}
OLDER = {("knowmem", "retain_qa"): "retain2_qa", ("knowmem", "retain_qa_icl"): "retain2_qa_icl",
         ("privleak", "retain"): "retain2"}


def columns(corpus: MuseCorpus, config: str, split: str) -> dict[str, list[str]]:
    """One split as the hub stores it: `text`, or `prompt` and `gt`, or `question` and `answer` columns."""
    if config == "verbmem":
        return {"prompt": [p for p, _ in corpus.verbmem], "gt": [g for _, g in corpus.verbmem]}
    if config == "knowmem":
        qa = corpus.knowmem[split]
        return {"question": [q.question for q in qa], "answer": [q.answer for q in qa]}
    return {"text": getattr(corpus, config)[split]}


def _by_config(corpus: MuseCorpus, names: dict) -> dict[str, dict[str, Dataset]]:
    """config -> the snapshot's split name -> its rows."""
    configs: dict[str, dict[str, Dataset]] = {}
    for config, split in PARTS:
        rows = Dataset.from_dict(columns(corpus, config, split))
        configs.setdefault(config, {})[names.get((config, split), split)] = rows
    return configs


def write_hub_parquet(corpus: MuseCorpus, out: Path, names: dict = TODAY) -> Path:
    """A hub snapshot, plus a `train` config (MUSE's pretraining data) that qunlearn never reads."""
    configs = _by_config(corpus, names)
    configs["train"] = {split: Dataset.from_dict({"text": corpus.raw[split]}) for split in ("forget", "retain1")}
    card = {"license": "cc-by-4.0", "dataset_info": [], "configs": []}
    for config, splits in configs.items():
        card["dataset_info"].append({"config_name": config, "features": [
            {"name": name, "dtype": "string"} for name in next(iter(splits.values())).column_names],
            "splits": [{"name": split, "num_examples": len(rows)} for split, rows in splits.items()]})
        card["configs"].append({"config_name": config,
                                "data_files": [{"split": split, "path": f"{config}/{split}-*"} for split in splits]})
        for split, rows in splits.items():
            (out / config).mkdir(parents=True, exist_ok=True)
            rows.to_parquet(str(out / config / f"{split}-00000-of-00001.parquet"))
    write_text(out / "README.md", f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n# A MUSE-News look-alike\n")
    return out


def write_save_to_disk(corpus: MuseCorpus, out: Path, names: dict = TODAY) -> Path:
    """One DatasetDict per config, saved with save_to_disk under out/CONFIG."""
    for config, splits in _by_config(corpus, names).items():
        DatasetDict(splits).save_to_disk(str(out / config))
    return out


def write_muse_json(corpus: MuseCorpus, out: Path, names: dict = TODAY, hyphens: bool = False) -> Path:
    """MUSE's GitHub JSON layout; with `hyphens`, file names like the hub's JSON copies (knowmem/forget-qa.json)."""
    for config, split in PARTS:
        name = names.get((config, split), split)
        rows = columns(corpus, config, split)
        items = rows["text"] if "text" in rows else [dict(zip(rows, values)) for values in zip(*rows.values())]
        write_json(out / config / f"{name.replace('_', '-') if hyphens else name}.json", items)
    return out
