"""Memory per process of unlearning the embedded model (the default config's architecture: hidden 256, 4 layers,
intermediate 768, vocab 2048) in one process and sharded over two (FSDP2 over gloo, CPU), per precision stack.

Usage: python benchmarks/unlearn_memory.py
Each job is the unlearn rule's own (`qunlearn.unlearn.job.run`, NPO_KLR so that the frozen reference counts),
on a random-weight model and a small generated corpus, in fresh processes (one, or two under torchrun). After
the last optimizer step each process reports the bytes of what it holds (its shards, where sharded): weights,
gradients, AdamW's two moments and the reference, and its peak RSS. On CPU the RSS is mostly Python, torch and
transformers (hundreds of MB against this model's tens), so the tensor bytes are the figure that scales to a 7B.
Ends with one line per precision: `<precision> tensor_ratio=<2 shards / 1> rss_ratio=<2 shards / 1>`.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

PRECISIONS = ("fp32", "mixed", "bf16")
HELD = ("weights", "gradients", "moments", "reference")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _bytes(tensors) -> int:
    from torch.distributed.tensor import DTensor

    local = [t.to_local() if isinstance(t, DTensor) else t for t in tensors]
    return sum(t.numel() * t.element_size() for t in local)


def worker(precision: str, folder: Path) -> None:
    """One process of one job: run it, then print what this process held as a JSON line."""
    import os

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from qunlearn.unlearn.job import LocalModels, run
    from qunlearn.unlearn.launch import UnlearnJob
    from qunlearn.unlearn.loop import WholeBatches

    torch.set_num_threads(1)
    baseline = _peak_rss()
    held = {}

    def measure_step(optimizer, *_):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        held.update(weights=_bytes(params), gradients=_bytes(p.grad for p in params if p.grad is not None),
                    moments=_bytes(t for state in optimizer.state.values() for k, t in state.items() if k != "step"))

    register_optimizer_step_post_hook(measure_step)
    shards = int(os.environ.get("WORLD_SIZE", 1))
    if shards == 1:
        class MeasuredBatches(WholeBatches):
            def frozen_copy(self, model):
                reference = super().frozen_copy(model)
                held["reference"] = _bytes(reference.parameters())
                return reference

        models = LocalModels(precision)
        models.plan = lambda target, method: MeasuredBatches()
    else:
        from qunlearn.unlearn.sharding import ShardedModels

        models = ShardedModels(precision)
        sharded_plan = models.plan

        def measured_plan(target, method):
            plan = sharded_plan(target, method)
            held["reference"] = _bytes(plan.reference.parameters())
            return plan

        models.plan = measured_plan
    settings = dict(method="npo_klr", lr=1e-5, epochs=1, batch_size=4, max_len=256, alpha=1.0, beta=0.1,
                    precision=precision, seed=0)
    out = folder / f"{precision}-{shards}"
    job = UnlearnJob(str(folder / "corpus"), str(folder / "tokenizer"), str(folder / "target"), None, settings, None,
                     [], 1, 16, "last", str(out), f"{out}.json", threads=1)
    run(job, models)
    print(json.dumps({"precision": precision, "shards": shards, "rank": int(os.environ.get("RANK", 0)), **held,
                      "rss_baseline": baseline, "rss_peak": _peak_rss()}), flush=True)
    models.close()


def prepare(folder: Path) -> None:
    """A small generated corpus, a tokenizer and a random-weight target of the default architecture."""
    from qunlearn.data.muse import load_corpus
    from qunlearn.data.synthetic import write_corpus
    from qunlearn.data.tokenizer import train_tokenizer
    from qunlearn.models.checkpoints import load_tokenizer, save_model
    from qunlearn.models.training import build_llama

    write_corpus(folder / "corpus", "news", seed=0, documents=10, facts=4, questions=2)
    corpus = load_corpus(folder / "corpus")
    train_tokenizer(corpus.raw["forget"] + corpus.raw["retain1"], 2048, folder / "tokenizer")
    tokenizer = load_tokenizer(folder / "tokenizer")
    save_model(build_llama(2048, 256, 4, 4, 768, 512, tokenizer, seed=0), folder / "target")  # vocab as configured


def measure(precision: str, shards: int, folder: Path) -> list[dict]:
    script = [__file__, "--worker", precision, "--folder", str(folder)]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(shards)] if shards > 1 else []
    done = subprocess.run([sys.executable, *launcher, *script], capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description="memory per process, unlearning in 1 and 2 processes")
    parser.add_argument("--worker", choices=PRECISIONS)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.folder)
    with tempfile.TemporaryDirectory() as folder:
        prepare(Path(folder))
        mib = 2**20
        print(f"{'precision':<10}{'shards':>7}{'rank':>5}" + "".join(f"{k + ' MiB':>14}" for k in HELD)
              + f"{'tensors MiB':>12}{'RSS base MiB':>13}{'RSS peak MiB':>13}")
        ratios = []
        for precision in PRECISIONS:
            per_shards = {shards: measure(precision, shards, Path(folder)) for shards in (1, 2)}
            for shards, ranks in per_shards.items():
                for r in sorted(ranks, key=lambda r: r["rank"]):
                    tensors = sum(r[k] for k in HELD)
                    print(f"{precision:<10}{shards:>7}{r['rank']:>5}" + "".join(f"{r[k] / mib:>14.2f}" for k in HELD)
                          + f"{tensors / mib:>12.2f}{r['rss_baseline'] / mib:>13.0f}{r['rss_peak'] / mib:>13.0f}")
            one, two = per_shards[1][0], max(per_shards[2], key=lambda r: sum(r[k] for k in HELD))
            ratios.append(f"{precision} tensor_ratio={sum(two[k] for k in HELD) / sum(one[k] for k in HELD):.3f} "
                          f"rss_ratio={two['rss_peak'] / one['rss_peak']:.3f}")
        print("\n".join(ratios))


if __name__ == "__main__":
    main()
