"""Batched evaluation against the one-at-a-time MUSE reference on the same model and benchmark, in one run.

Usage: python benchmarks/eval_speed.py [MODEL_DIR TOKENIZER_DIR CORPUS_DIR] [--threads N (default: every core)]
Defaults: the default run's toy-news target (run `make run` first). Ends with
`speedup=<ratio> max_metric_diff=<points>`.
"""

import argparse
import os
import time

import torch

from qunlearn.data.muse import load_corpus
from qunlearn.evaluate.evaluator import evaluate
from qunlearn.evaluate.oracle import reference_evaluate
from qunlearn.models.checkpoints import load_model, load_tokenizer

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="results/models/toy-news/t0/target")
    parser.add_argument("tokenizer", nargs="?", default="results/tokenizer")
    parser.add_argument("corpus", nargs="?", default="results/corpora/toy-news")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, corpus = load_model(args.model), load_tokenizer(args.tokenizer), load_corpus(args.corpus)
    evaluate(model, tokenizer, corpus, args.batch_size, 0.4)  # warm-up: first-call kernel setup is not evaluation

    start = time.perf_counter()
    batched = evaluate(model, tokenizer, corpus, args.batch_size, 0.4)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = reference_evaluate(model, tokenizer, corpus, 0.4)
    reference_s = time.perf_counter() - start

    diffs = {m: abs(batched[m] - reference[m]) for m in METRICS}
    diffs["privleak_auc (x100)"] = 100 * abs(batched["privleak_auc"] - reference["privleak_auc"])
    for metric in METRICS:
        same = sum(a == b for a, b in zip(batched["outputs"][metric], reference["outputs"][metric], strict=True))
        print(f"{metric:<12} batched {batched[metric]:7.2f}  reference {reference[metric]:7.2f}  "
              f"identical outputs {same}/{len(reference['outputs'][metric])}")
    print(f"privleak_auc batched {batched['privleak_auc']:.4f}  reference {reference['privleak_auc']:.4f}")
    print(f"batched {batched_s:.1f} s, one-at-a-time {reference_s:.1f} s ({args.threads} thread(s))")
    print(f"speedup={reference_s / batched_s:.1f} max_metric_diff={max(diffs.values()):.2f}")


if __name__ == "__main__":
    main()
