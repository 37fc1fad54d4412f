"""Quantization time per quantizer, bits and group size, from a finished run's `benchmark:` files.

Usage: python benchmarks/quantize_times.py [RESULTS_DIR]   (default: results)
Each quantize job is one model at one format (results/benchmarks/quantize/{corpus}/t{target_seed}/{model}/{precision}.tsv;
precision names read rtn-w4g64, gptq-w8g128, ...). Times include loading the model and saving the
compressed checkpoint; ends with the ratio of each quantizer's mean time to RTN's at the same bits.
"""

import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd


def main(results: Path) -> None:
    times = defaultdict(list)
    for tsv in sorted((results / "benchmarks" / "quantize").rglob("*.tsv")):
        times[tsv.stem].append(float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]))
    if not times:
        sys.exit(f"no quantize benchmark files under {results / 'benchmarks'}: run the workflow first")
    means = {precision: sum(s) / len(s) for precision, s in times.items()}
    print(f"{'precision':<16}{'jobs':>6}{'mean s':>9}{'min s':>8}{'max s':>8}")
    for precision, seconds in sorted(times.items()):
        print(f"{precision:<16}{len(seconds):>6}{means[precision]:>9.1f}{min(seconds):>8.1f}{max(seconds):>8.1f}")
    for precision, mean in sorted(means.items()):
        rtn = "rtn-" + precision.split("-", 1)[1]
        if not precision.startswith("rtn-") and rtn in means:
            print(f"{precision}_vs_rtn={mean / means[rtn]:.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
