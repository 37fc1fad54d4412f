"""Wall time of each rule of a finished run, from Snakemake's `benchmark:` files, and the total; with a width
ladder (model.widths), each width's jobs and job-seconds per rule too.

Usage: python benchmarks/rule_times.py [RESULTS_DIR]   (default: results)
The total is the sum of job times (CPU-seconds of wall clock per job); with --cores N jobs overlap, so the
run's elapsed time is printed separately from Snakemake's log when it is there.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

from qunlearn.config.naming import base_folder_pattern, parse_base_folder, parse_pair, target_folder_pattern

# The jobs each model costs once it is trained (issue 36's measure of a run's cost per unlearned model).
MODEL_RULES = ("unlearn", "quantize", "evaluate", "mechanism")


def width_of(parts: tuple[str, ...]) -> str:
    """A job's width from its benchmark file's path: a rung's (t0-w512/..., base-w512.tsv), else the run's own."""
    for part in parts:
        if re.fullmatch(target_folder_pattern(None), part):
            width = parse_pair(part)[1]
        elif re.fullmatch(base_folder_pattern(None), part.removesuffix(".tsv")):
            width = parse_base_folder(part.removesuffix(".tsv"))
        else:
            continue
        return "own" if width is None else str(width)
    return "own"


def main(results: Path) -> None:
    per_rule, per_width = defaultdict(list), defaultdict(float)
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule, *parts = tsv.relative_to(results / "benchmarks").parts
        seconds = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
        per_rule[rule].append(seconds)
        per_width[width_of(tuple(parts)), rule] += seconds
    if not per_rule:
        sys.exit(f"no benchmark files under {results / 'benchmarks'}: run the workflow first")
    print(f"{'rule':<18}{'jobs':>6}{'total s':>10}{'mean s':>9}{'max s':>8}")
    for rule, seconds in sorted(per_rule.items(), key=lambda item: -sum(item[1])):
        print(f"{rule:<18}{len(seconds):>6}{sum(seconds):>10.1f}{sum(seconds) / len(seconds):>9.1f}{max(seconds):>8.1f}")
    total = sum(sum(s) for s in per_rule.values())
    print(f"{'all jobs':<18}{sum(map(len, per_rule.values())):>6}{total:>10.1f}")
    model_rules = [rule for rule in MODEL_RULES if rule in per_rule]
    print(f"{'model rules':<18}{sum(len(per_rule[r]) for r in model_rules):>6}"
          f"{sum(sum(per_rule[r]) for r in model_rules):>10.1f}   ({', '.join(model_rules)})")
    widths = sorted({width for width, _ in per_width}, key=lambda w: (w != "own", int(w) if w.isdigit() else 0))
    if len(widths) > 1:  # a width ladder: what each rung costs ("own": the run's own width and the aggregate jobs)
        print(f"\n{'job-seconds':<28}" + "".join(f"{w:>10}" for w in widths))
        for rule in sorted({rule for _, rule in per_width}):
            print(f"{rule:<28}" + "".join(f"{per_width.get((w, rule), 0.0):>10.1f}" for w in widths))
        print(f"{'all jobs':<28}" + "".join(f"{sum(v for (w, _), v in per_width.items() if w == width):>10.1f}"
                                            for width in widths))
    logs = sorted((results.parent / ".snakemake" / "log").glob("*.snakemake.log"))
    if logs:
        match = re.search(r"Elapsed time: (\S+)", logs[-1].read_text())
        if match:
            print(f"elapsed (last run, {logs[-1].name}): {match.group(1)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
