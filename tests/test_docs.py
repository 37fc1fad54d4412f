"""The README stays short and every topic it used to hold has a page under docs/."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The README's section titles before its topics moved to docs/ (commit 24b2db0).
FORMER_SECTIONS = [
    "What the default run computes", "Results of the default run",
    "Earlier, on another machine: one seed, both corpora (commit 40dd241)", "The mechanism, measured",
    "The formats models are served in", "Methods, with and without SURE (the paper-claims preset)",
    "Calibration: what was tried, and what each gave", "Audit mode: bring your own unlearned models", "Configuration",
    "Scaling out: Slurm, GPUs and real MUSE", "Conda environments", "Reproducibility", "Design", "Benchmarks",
    "Troubleshooting",
]


def _headings(text: str) -> set[str]:
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def test_every_former_readme_section_has_a_home_in_docs():
    headings = set().union(*(_headings(page.read_text()) for page in (REPO / "docs").glob("*.md")))
    assert [title for title in FORMER_SECTIONS if title not in headings] == []


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", readme))
    assert linked == {page.name for page in (REPO / "docs").glob("*.md")}
