"""Evaluate one model at one precision with MUSE's four metrics: batched greedy generation and log-probs."""

import logging

import torch
from tqdm import tqdm

from .metrics import (
    MINK_FRACTIONS,
    cut_answer,
    forget_holdout_auc,
    knowmem_prompt,
    mean_rouge_l,
    min_k_score,
)
from .muse import MuseCorpus

log = logging.getLogger(__name__)
VERBMEM_NEW_TOKENS = 128
KNOWMEM_NEW_TOKENS = 32


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids with exactly one BOS first, whatever the tokenizer's own default."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id] + ids


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, desc: str) -> list[str]:
    """Greedy continuations of left-padded batches; returns the new tokens decoded without special tokens."""
    outputs = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
        encoded = [_encode(tokenizer, p) for p in prompts[start : start + batch_size]]
        width = max(map(len, encoded))
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in encoded])
        attention_mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
        generated = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        outputs += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    return outputs


@torch.no_grad()
def token_logprobs(model, tokenizer, texts: list[str], batch_size: int, max_len: int) -> list[list[float]]:
    """Log-probability of each token given its prefix (BOS first), right-padded batches."""
    results = []
    for start in tqdm(range(0, len(texts), batch_size), desc="privleak", mininterval=5):
        encoded = [_encode(tokenizer, t)[:max_len] for t in texts[start : start + batch_size]]
        width = max(map(len, encoded))
        input_ids = torch.tensor([e + [tokenizer.pad_token_id] * (width - len(e)) for e in encoded])
        attention_mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
        logp = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
        picked = logp[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        results += [picked[row, : len(e) - 1].tolist() for row, e in enumerate(encoded)]
    return results


def verbmem(model, tokenizer, corpus: MuseCorpus, batch_size: int) -> tuple[float, list[str]]:
    prompts = [prompt for prompt, _ in corpus.verbmem]
    references = [
        tokenizer.decode(tokenizer(gt, add_special_tokens=False)["input_ids"][:VERBMEM_NEW_TOKENS], skip_special_tokens=True)
        for _, gt in corpus.verbmem
    ]
    outputs = generate(model, tokenizer, prompts, VERBMEM_NEW_TOKENS, batch_size, "verbmem")
    return mean_rouge_l(outputs, references), outputs


def knowmem(model, tokenizer, corpus: MuseCorpus, split: str, batch_size: int) -> tuple[float, list[str]]:
    icl = [(qa.question, qa.answer) for qa in corpus.knowmem[f"{split}_qa_icl"]]
    questions = corpus.knowmem[f"{split}_qa"]
    prompts = [knowmem_prompt(icl, qa.question) for qa in questions]
    outputs = [cut_answer(o) for o in generate(model, tokenizer, prompts, KNOWMEM_NEW_TOKENS, batch_size, f"knowmem-{split}")]
    return mean_rouge_l(outputs, [qa.answer for qa in questions]), outputs


def mink_scores(model, tokenizer, corpus: MuseCorpus, batch_size: int, max_len: int) -> dict[str, dict[str, list[float]]]:
    """Per text, Min-K% for every k in MINK_FRACTIONS, so AUC can be recomputed for any k without the model."""
    scores = {}
    for split in ("forget", "holdout"):
        logprobs = token_logprobs(model, tokenizer, corpus.privleak[split], batch_size, max_len)
        scores[split] = {str(k): [min_k_score(lp, k) for lp in logprobs] for k in MINK_FRACTIONS}
    return scores


def evaluate(model, tokenizer, corpus: MuseCorpus, batch_size: int, mink_k: float) -> dict:
    max_len = model.config.max_position_embeddings
    verbmem_f, verbmem_outputs = verbmem(model, tokenizer, corpus, batch_size)
    knowmem_f, knowmem_f_outputs = knowmem(model, tokenizer, corpus, "forget", batch_size)
    knowmem_r, knowmem_r_outputs = knowmem(model, tokenizer, corpus, "retain", batch_size)
    mink = mink_scores(model, tokenizer, corpus, batch_size, max_len)
    return {
        "verbmem_f": verbmem_f,
        "knowmem_f": knowmem_f,
        "knowmem_r": knowmem_r,
        "privleak_auc": forget_holdout_auc(mink["forget"][str(mink_k)], mink["holdout"][str(mink_k)]),
        "mink_k": mink_k,
        "mink": mink,
        "outputs": {"verbmem_f": verbmem_outputs, "knowmem_f": knowmem_f_outputs, "knowmem_r": knowmem_r_outputs},
    }
