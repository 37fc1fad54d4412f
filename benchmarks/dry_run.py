"""Dry-run time of a preset's DAG (default: the paper's whole grid) and its job counts per rule.

Usage: python benchmarks/dry_run.py [CONFIG] — run from the repository root. Ends with
`dry_run_seconds=<s> jobs=<n>` (target for presets/paper.yaml: under 10 s on a 2-core machine).
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qunlearn.workflow import job_counts

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    config = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "presets/paper.yaml").resolve()
    with tempfile.TemporaryDirectory() as workdir:  # an empty folder: every job is scheduled
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(config),
                   "--directory", workdir, "--dry-run", "--quiet", "rules", "--cores", "2"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    counts = job_counts(done.stdout + done.stderr)
    for rule, count in sorted(counts.items()):
        print(f"{rule:<16} {count:>6}")
    print(f"dry_run_seconds={seconds:.1f} jobs={sum(counts.values())}")


if __name__ == "__main__":
    main()
