"""Time per unlearning step of this checkout's `unlearn()` against a baseline commit's (3afb097: the step before
the forget and retain batches shared one forward), per precision stack, in one run, and how far their final weights
are apart.

Usage: python benchmarks/unlearn_step.py [TARGET_DIR TOKENIZER_DIR CORPUS_DIR] [--baseline REV] [--stacks S ...]
                                         [--epochs N] [--rounds R]
Defaults: the default run's toy-news target t0 (run `make run` first), NPO_GDR at lr 3e-5 and batch 1 for 1 epoch,
bf16, bf16-sr, fp32 and mixed, 2 rounds, one thread as in the workflow. Each round runs every stack with the
baseline's code and with this checkout's, each in a fresh process, in turn; each side keeps its fastest round (on a
shared machine the slower rounds measure the neighbours). One line per stack:
    <stack> baseline_ms=<ms> ms=<ms> ratio=<this/baseline> identical=<bool> max_rel_diff=<max |Δw| / max |w|>
Weights are not expected bit-identical: one forward and one backward over both batches sums the two losses'
gradients inside the matrix products (in fp32) instead of adding two gradients in the weights' dtype, so they
differ by rounding (about a bf16 unit where weights are bf16, float32 rounding where they are fp32). Without the
default run's target it times an untrained model of config.yaml's architecture (a step's time depends on the
shapes, not the weights) and says so.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml

# No qunlearn import at module level: each worker imports its own side's qunlearn (baseline or this checkout).
STEP = {"method": "npo_gdr", "lr": 3e-5, "batch_size": 1, "max_len": 256, "alpha": 1.0, "beta": 0.1, "seed": 0}


def stand_in(folder: Path) -> tuple[str, str, str]:
    """config.yaml's toy-news corpus, a tokenizer trained on it and an untrained model of its architecture."""
    from qunlearn.data.synthetic import write_corpus
    from qunlearn.data.muse import load_corpus
    from qunlearn.data.tokenizer import train_tokenizer
    from qunlearn.models.checkpoints import load_tokenizer, save_model
    from qunlearn.models.training import build_llama

    config = yaml.safe_load(Path("config.yaml").read_text())
    corpus_dir, tokenizer_dir, target_dir = folder / "toy-news", folder / "tokenizer", folder / "target"
    write_corpus(corpus_dir, seed=config["seed"], **config["corpora"]["toy-news"]["embedded"])
    corpus = load_corpus(corpus_dir)
    train_tokenizer(corpus.raw["forget"] + corpus.raw["retain1"] + corpus.raw["retain2"],
                    config["tokenizer"]["vocab_size"], tokenizer_dir)
    tokenizer, model = load_tokenizer(tokenizer_dir), config["model"]
    save_model(build_llama(len(tokenizer), model["hidden"], model["layers"], model["heads"], model["intermediate"],
                           model["max_position"], tokenizer, seed=config["seed"]), target_dir)
    return str(target_dir), str(tokenizer_dir), str(corpus_dir)


def worker(job: dict) -> None:
    """In a fresh process, with `job["src"]` first on the path: unlearn the target with that tree's `unlearn()`,
    save the weights and print the seconds and steps of the unlearn() call as JSON."""
    sys.path.insert(0, job["src"])
    import torch
    from safetensors.torch import save_file

    try:  # this checkout's layout
        from qunlearn.models.checkpoints import load_model, load_tokenizer
        from qunlearn.unlearn.loop import UnlearnSettings, unlearn
        from qunlearn.unlearn.stacks import precision_stack
        weight_dtype = precision_stack(job["stack"]).weight_dtype
    except ModuleNotFoundError:  # 3afb097's
        from qunlearn.checkpoints import load_model, load_tokenizer
        from qunlearn.unlearning import WEIGHT_DTYPES, UnlearnSettings, unlearn
        weight_dtype = WEIGHT_DTYPES[job["stack"]]
    torch.set_num_threads(1)
    texts = json.loads(Path(job["texts"]).read_text())
    model = load_model(job["target"], weight_dtype)
    settings = UnlearnSettings(**STEP, epochs=job["epochs"], precision=job["stack"])
    start = time.perf_counter()
    record = unlearn(model, load_tokenizer(job["tokenizer"]), texts["forget"], texts["retain"], settings)
    seconds = time.perf_counter() - start
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, job["weights"])
    print(json.dumps({"seconds": seconds, "steps": record["steps"]}))


def run_side(src: str, stack: str, common: dict, weights: Path) -> float:
    """Seconds per step of one side's unlearn() in a fresh process."""
    job = {**common, "src": src, "stack": stack, "weights": str(weights)}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{src} {stack} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"] / result["steps"]


def weight_difference(a: Path, b: Path) -> tuple[bool, float]:
    from safetensors.torch import load_file

    first, second = load_file(a), load_file(b)
    identical = all(first[name].equal(second[name]) for name in first)
    relative = max(((first[n].float() - second[n].float()).abs().max() / first[n].float().abs().max()).item()
                   for n in first)
    return identical, relative


def baseline_tree(rev: str, folder: Path) -> str:
    """The baseline commit's src/ folder, from git."""
    archive = subprocess.run(["git", "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return str(folder / "src")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", nargs="?", default="results/models/toy-news/t0/target")
    parser.add_argument("tokenizer", nargs="?", default="results/tokenizer")
    parser.add_argument("corpus", nargs="?", default="results/corpora/toy-news")
    parser.add_argument("--baseline", default="3afb097")
    parser.add_argument("--stacks", nargs="+", default=["bf16", "bf16-sr", "fp32", "mixed"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    from qunlearn.data.muse import load_corpus

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        target, tokenizer, corpus = args.target, args.tokenizer, args.corpus
        if not Path(target).exists():
            print(f"{target} not found: timing an untrained model of config.yaml's architecture on a toy-news "
                  "corpus and tokenizer made here")
            target, tokenizer, corpus = stand_in(scratch)
        raw = load_corpus(corpus).raw
        (scratch / "texts.json").write_text(json.dumps({"forget": raw["forget"], "retain": raw["retain1"]}))
        common = {"target": target, "tokenizer": tokenizer, "texts": str(scratch / "texts.json"), "epochs": args.epochs}
        sides = {"baseline": baseline_tree(args.baseline, scratch / "baseline"), "this": str(Path("src").resolve())}
        per_step = {(side, stack): [] for side in sides for stack in args.stacks}
        for _ in range(args.rounds):
            for stack in args.stacks:
                for side, src in sides.items():
                    per_step[side, stack].append(run_side(src, stack, common, scratch / f"{side}-{stack}.safetensors"))
        print(f"NPO_GDR, batch 1, {args.epochs} epoch(s) per process, fastest of {args.rounds} round(s); "
              f"baseline {args.baseline}:")
        ratios = []
        for stack in args.stacks:
            baseline, this = min(per_step["baseline", stack]), min(per_step["this", stack])
            identical, relative = weight_difference(scratch / f"baseline-{stack}.safetensors",
                                                    scratch / f"this-{stack}.safetensors")
            ratios.append(this / baseline)
            print(f"{stack} baseline_ms={baseline * 1000:.0f} ms={this * 1000:.0f} ratio={this / baseline:.2f} "
                  f"identical={identical} max_rel_diff={relative:.1e}")
        print(f"geometric_mean_ratio={statistics.geometric_mean(ratios):.2f}")


if __name__ == "__main__":
    main()
