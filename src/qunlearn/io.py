"""Atomic output: a result is either complete on disk or absent, so an interrupted run resumes cleanly."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from qunlearn.errors import QunlearnError


def write_json(path: str | Path, obj) -> None:
    """Write JSON through a temporary file in the same folder, then rename it into place."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise QunlearnError(f"missing file: {path}", "check the path, or re-run the rule that writes it")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise QunlearnError(
            f"malformed JSON in {path}: {error.msg} at line {error.lineno}", "fix or regenerate the file"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide results from the group on shared disks
    if path.exists():
        shutil.rmtree(path)
    os.replace(staging, path)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary file name beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield staging
    except BaseException:
        os.unlink(staging)
        raise
    os.chmod(staging, 0o666 & ~_umask())  # as a plain open() would create it, not mkstemp's 0600
    os.replace(staging, path)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as staging:
        Path(staging).write_text(text)
