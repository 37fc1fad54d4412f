"""llama.cpp itself against qunlearn's evaluation path for the GGUF formats: greedy continuations of VerbMem prompts
from llama.cpp (llama-cpp-python on the quantized file) and from the file dequantized into transformers (what
qunlearn evaluates), and, for the fp32 GGUF that qunlearn writes before quantizing, the largest logit difference.

Usage: python benchmarks/gguf_crosscheck.py [MODEL_DIR QUANTIZED_DIR TOKENIZER_DIR CORPUS_DIR] [--prompts N]
[--tokens N] [--threads N]. Defaults: the default run's toy-news target and its gguf-* folders (run presets/formats.yaml
first; needs the gguf extra). Ends with `identical=<continuations>/<total> fp32_max_logit_diff=<x>`.
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from llama_cpp import Llama

from qunlearn.data.muse import load_corpus
from qunlearn.models.checkpoints import load_model, load_tokenizer
from qunlearn.quantize.gguf import GGUF_FILE, load_gguf, write_gguf


def llama_cpp_greedy(llm: Llama, prompt: list[int], tokens: int, eos: int) -> list[int]:
    out = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        if token == eos or len(out) == tokens:
            break
        out.append(token)
    return out


@torch.no_grad()
def torch_greedy(model, prompt: list[int], tokens: int, eos: int) -> list[int]:
    ids = model.generate(torch.tensor([prompt]), max_new_tokens=tokens, do_sample=False, eos_token_id=eos,
                         pad_token_id=eos)[0, len(prompt):].tolist()
    return ids[: ids.index(eos)] if eos in ids else ids


def fp32_logit_difference(model_dir: str, tokenizer_dir: str, prompt: list[int], threads: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "f32.gguf"
        write_gguf(model_dir, tokenizer_dir, path)
        llm = Llama(model_path=str(path), n_ctx=512, n_threads=threads, logits_all=True, verbose=False)
        llm.eval(prompt)
        theirs = np.array(llm.scores[: len(prompt)])
        llm.close()
    with torch.no_grad():
        ours = load_model(model_dir)(torch.tensor([prompt])).logits[0].numpy()
    return float(np.abs(theirs - ours).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="results/models/toy-news/t0/target")
    parser.add_argument("quantized", nargs="?", default="results/quantized/toy-news/t0/target")
    parser.add_argument("tokenizer", nargs="?", default="results/tokenizer")
    parser.add_argument("corpus", nargs="?", default="results/corpora/toy-news")
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.tokenizer)
    prompts = [tokenizer(prompt)["input_ids"] for prompt, _ in load_corpus(args.corpus).verbmem[: args.prompts]]
    difference = fp32_logit_difference(args.model, args.tokenizer, prompts[0], args.threads)
    print(f"fp32 GGUF in llama.cpp vs the checkpoint in torch, first prompt: max logit difference {difference:.4f}")
    identical = total = 0
    for folder in sorted(Path(args.quantized).glob("gguf-*")):
        model = load_gguf(folder)
        llm = Llama(model_path=str(folder / GGUF_FILE), n_ctx=512, n_threads=args.threads, verbose=False)
        agree, same = [], 0
        for prompt in prompts:
            ours = torch_greedy(model, prompt, args.tokens, tokenizer.eos_token_id)
            theirs = llama_cpp_greedy(llm, prompt, args.tokens, tokenizer.eos_token_id)
            agree.append(next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs))))
            same += ours == theirs
        llm.close()
        identical, total = identical + same, total + len(prompts)
        print(f"{folder.name}: {same}/{len(prompts)} continuations identical (up to {args.tokens} tokens); "
              f"tokens before the first difference: {agree}")
    print(f"identical={identical}/{total} fp32_max_logit_diff={difference:.4f}")


if __name__ == "__main__":
    main()
