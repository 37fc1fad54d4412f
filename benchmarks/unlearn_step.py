"""NPO_GDR unlearning steps with the frozen reference's likelihood kept per forget chunk (what `unlearn` does)
against recomputing it at every step, on the same model and chunks, in one run; or, with `--stacks`, the time
per step of each precision stack relative to bf16's.

Usage: python benchmarks/unlearn_step.py [TARGET_DIR TOKENIZER_DIR CORPUS_DIR] [--epochs N] [--precision P]
       python benchmarks/unlearn_step.py [TARGET_DIR TOKENIZER_DIR CORPUS_DIR] --stacks [S ...] [--rounds R]
Defaults: the default run's toy-news target (run `make run` first), 2 epochs of batch 1 in pure bf16, one
thread as in the workflow. Ends with `speedup=<ratio> identical_weights=<bool>`, or with `--stacks` one line
per stack, `<stack> ms_per_step=<ms> vs_bf16=<ratio>`. Without the default run's target it times an untrained
model of config.yaml's architecture on a toy-news corpus and tokenizer generated in the script (a step's time
depends on the shapes, not on the weights) and says so.
"""

import argparse
import copy
import itertools
import tempfile
import time
from pathlib import Path

import torch
import yaml

from qunlearn.data.batches import collate, encode_documents, pack
from qunlearn.data.muse import load_corpus
from qunlearn.data.synthetic import write_corpus
from qunlearn.data.tokenizer import train_tokenizer
from qunlearn.models.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.models.training import build_llama
from qunlearn.registry import STACKS
from qunlearn.unlearn.loop import step_precision
from qunlearn.unlearn.losses import LossContext, gdr_loss, npo_loss
from qunlearn.unlearn.stacks import precision_stack


def chunks(tokenizer, texts: list[str]) -> list[list[int]]:
    return pack(encode_documents(tokenizer, texts), 256, tokenizer.bos_token_id)


def unlearn_steps(target: str, forget: list, retain: list, precision: str, epochs: int, cached: bool):
    """Seconds for `epochs` passes over the forget chunks in order, and the weights they leave."""
    model = load_model(target, precision_stack(precision).weight_dtype).train()
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    kept = LossContext(model, reference, beta=0.1)
    optimizer = precision_stack(precision).optimizer(list(model.parameters()), 3e-5, 0)
    retain_batches = itertools.cycle(retain)
    start = time.perf_counter()
    for forget_batch in forget * epochs:
        ctx = kept if cached else LossContext(model, reference, beta=0.1)  # a fresh context forgets the reference
        with step_precision(precision, model.device):
            loss = npo_loss(ctx, forget_batch) + gdr_loss(ctx, next(retain_batches))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, model.state_dict()


def stand_in(folder: Path) -> tuple[str, str, str]:
    """config.yaml's toy-news corpus, a tokenizer of its vocabulary trained on that corpus, and an untrained model
    of its architecture: target, tokenizer and corpus folders with the default run's shapes."""
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


def compare_stacks(target: str, forget: list, retain: list, stacks: list[str], epochs: int, rounds: int) -> None:
    """Each stack's time per step (reference kept, as `unlearn` does): every stack once per round, in turn, and
    each stack's fastest round kept (on a shared machine the slower rounds measure the neighbours)."""
    steps = len(forget) * epochs
    seconds = {stack: float("inf") for stack in stacks}
    for _ in range(rounds):
        for stack in stacks:
            seconds[stack] = min(seconds[stack], unlearn_steps(target, forget, retain, stack, epochs, cached=True)[0])
    print(f"NPO_GDR, batch 1, {steps} steps per stack and round, the fastest of {rounds} round(s):")
    for stack, spent in seconds.items():
        print(f"{stack} ms_per_step={spent / steps * 1000:.0f} vs_bf16={spent / seconds['bf16']:.2f}")


def compare_reference(target: str, forget: list, retain: list, precision: str, epochs: int) -> None:
    """The frozen reference's likelihood recomputed every step against kept per chunk, on the same steps."""
    steps = len(forget) * epochs
    recomputed_s, recomputed = unlearn_steps(target, forget, retain, precision, epochs, cached=False)
    kept_s, kept = unlearn_steps(target, forget, retain, precision, epochs, cached=True)
    identical = all(torch.equal(kept[name], recomputed[name]) for name in kept)
    print(f"{steps} steps ({precision}): reference recomputed {recomputed_s / steps * 1000:.0f} ms/step, "
          f"kept {kept_s / steps * 1000:.0f} ms/step")
    print(f"speedup={recomputed_s / kept_s:.2f} identical_weights={identical}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", nargs="?", default="results/models/toy-news/t0/target")
    parser.add_argument("tokenizer", nargs="?", default="results/tokenizer")
    parser.add_argument("corpus", nargs="?", default="results/corpora/toy-news")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=sorted(STACKS))
    parser.add_argument("--stacks", nargs="*", choices=list(STACKS),
                        help="time these stacks (all when none is named) against bf16 instead")
    parser.add_argument("--rounds", type=int, default=1, help="with --stacks: time every stack this many times")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        target, tokenizer, corpus = args.target, args.tokenizer, args.corpus
        if not Path(target).exists():
            print(f"{target} not found: timing an untrained model of config.yaml's architecture on a toy-news "
                  "corpus and tokenizer made here")
            target, tokenizer, corpus = stand_in(Path(scratch))
        tokenizer, corpus = load_tokenizer(tokenizer), load_corpus(corpus)
        pad = tokenizer.pad_token_id
        forget = [collate([c], pad) for c in chunks(tokenizer, corpus.raw["forget"])]
        retain = [collate([c], pad) for c in chunks(tokenizer, corpus.raw["retain1"])]
        if args.stacks is None:
            compare_reference(target, forget, retain, args.precision, args.epochs)
        else:
            stacks = ["bf16", *(stack for stack in args.stacks or STACKS if stack != "bf16")]
            compare_stacks(target, forget, retain, stacks, args.epochs, args.rounds)


if __name__ == "__main__":
    main()
