"""NPO_GDR unlearning steps with the frozen reference's likelihood kept per forget chunk (what `unlearn` does)
against recomputing it at every step, on the same model and chunks, in one run.

Usage: python benchmarks/unlearn_step.py [TARGET_DIR TOKENIZER_DIR CORPUS_DIR] [--epochs N] [--precision P]
Defaults: the default run's toy-news target (run `make run` first), 2 epochs of batch 1 in pure bf16, one
thread as in the workflow. Ends with `speedup=<ratio> identical_weights=<bool>`.
"""

import argparse
import copy
import itertools
import time

import torch

from qunlearn.checkpoints import load_model, load_tokenizer
from qunlearn.data import collate, encode_documents, pack
from qunlearn.muse import load_corpus
from qunlearn.unlearning import WEIGHT_DTYPES, LossContext, gdr_loss, npo_loss, step_precision


def chunks(tokenizer, texts: list[str]) -> list[list[int]]:
    return pack(encode_documents(tokenizer, texts), 256, tokenizer.bos_token_id)


def unlearn_steps(target: str, forget: list, retain: list, precision: str, epochs: int, cached: bool):
    """Seconds for `epochs` passes over the forget chunks in order, and the weights they leave."""
    model = load_model(target, WEIGHT_DTYPES[precision]).train()
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    kept = LossContext(model, reference, beta=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", nargs="?", default="results/models/toy-news/target")
    parser.add_argument("tokenizer", nargs="?", default="results/tokenizer")
    parser.add_argument("corpus", nargs="?", default="results/corpora/toy-news")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=sorted(WEIGHT_DTYPES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer, corpus = load_tokenizer(args.tokenizer), load_corpus(args.corpus)
    pad = tokenizer.pad_token_id
    forget = [collate([c], pad) for c in chunks(tokenizer, corpus.raw["forget"])]
    retain = [collate([c], pad) for c in chunks(tokenizer, corpus.raw["retain1"])]
    steps = len(forget) * args.epochs
    recomputed_s, recomputed = unlearn_steps(args.target, forget, retain, args.precision, args.epochs, cached=False)
    kept_s, kept = unlearn_steps(args.target, forget, retain, args.precision, args.epochs, cached=True)
    identical = all(torch.equal(kept[name], recomputed[name]) for name in kept)
    print(f"{steps} steps ({args.precision}): reference recomputed {recomputed_s / steps * 1000:.0f} ms/step, "
          f"kept {kept_s / steps * 1000:.0f} ms/step")
    print(f"speedup={recomputed_s / kept_s:.2f} identical_weights={identical}")


if __name__ == "__main__":
    main()
