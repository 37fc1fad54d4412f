"""Evaluate one model at one precision with MUSE's four metrics: batched greedy generation and log-probs."""

import torch
from tqdm import tqdm
from transformers import StaticCache, StoppingCriteria, StoppingCriteriaList

from .metrics import KNOWMEM_STOPS, cut_answer, icl_prefix, knowmem_prompt, mean_rouge_l, mink_auc, mink_table
from .muse import MuseCorpus

VERBMEM_NEW_TOKENS = 128
KNOWMEM_NEW_TOKENS = 32
AUTO_BATCH_SIZE = {"cpu": 128, "cuda": 32}


def batch_size_for(setting: int | str, device: torch.device) -> int:
    """evaluation.batch_size: a number, or 'auto' for the device's default."""
    return AUTO_BATCH_SIZE.get(device.type, 32) if setting == "auto" else int(setting)


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids with exactly one BOS first, whatever the tokenizer's own default."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id] + ids


class StopOnStrings(StoppingCriteria):
    """Per row: done once the new text contains a stop string. (transformers' own `stop_strings` builds
    vocabulary-wide tables on every call, which cost more than the tokens it saves here.)"""

    def __init__(self, tokenizer, stops: tuple[str, ...], prompt_width: int):
        self.tokenizer, self.stops, self.prompt_width = tokenizer, stops, prompt_width

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        # The Rust tokenizer's batch decode: transformers' Python-side decode costs more than the model here.
        texts = self.tokenizer.backend_tokenizer.decode_batch(input_ids[:, self.prompt_width :].tolist(), skip_special_tokens=True)
        return torch.tensor([any(stop in text for stop in self.stops) for text in texts], device=input_ids.device)


def _split_at_prefix(prefix_ids: list[int], encoded: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """The shared prefix and each prompt's rest, if every prompt's tokens start with the prefix's tokens
    (true for tokenizers that split at whitespace); otherwise no prefix and the whole prompts."""
    if any(e[: len(prefix_ids)] != prefix_ids or len(e) == len(prefix_ids) for e in encoded):
        return [], encoded
    return prefix_ids, [e[len(prefix_ids) :] for e in encoded]


def _static_cache(model, prefix_cache, batch_size: int, length: int) -> StaticCache:
    """A preallocated cache holding the shared prefix's keys and values for every row. (A growing cache
    concatenates all keys at every step, which costs more than the model on CPU.)"""
    cache = StaticCache(config=model.config, max_cache_len=length)
    if prefix_cache is not None:
        for index, layer in enumerate(prefix_cache.layers):
            cache.update(layer.keys.expand(batch_size, -1, -1, -1), layer.values.expand(batch_size, -1, -1, -1), index)
    return cache


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, desc: str,
             stop_strings: tuple[str, ...] = (), shared_prefix: str = "") -> list[str]:
    """Greedy continuations of left-padded batches; returns the new tokens decoded without special tokens.

    A batch stops early once every row has produced one of `stop_strings`; callers cut at the stop string,
    so the text they keep is the same as with the full `max_new_tokens`. A `shared_prefix` that every prompt
    starts with (KnowMem's 10 in-context examples) is encoded once and its key-value cache reused; the padding
    then sits between prefix and rest, which the attention mask and mask-derived positions make invisible."""
    encoded = [_encode(tokenizer, p) for p in prompts]
    prefix_ids, rests = _split_at_prefix(_encode(tokenizer, shared_prefix), encoded) if shared_prefix else ([], encoded)
    prefix_cache = model(input_ids=torch.tensor([prefix_ids], device=model.device)).past_key_values if prefix_ids else None
    outputs = []
    for start in tqdm(range(0, len(rests), batch_size), desc=desc, mininterval=5):
        batch = rests[start : start + batch_size]
        width = max(map(len, batch))
        input_ids = torch.tensor([prefix_ids + [tokenizer.pad_token_id] * (width - len(e)) + e for e in batch])
        attention_mask = torch.tensor([[1] * len(prefix_ids) + [0] * (width - len(e)) + [1] * len(e) for e in batch])
        cache = _static_cache(model, prefix_cache, len(batch), input_ids.shape[1] + max_new_tokens)
        generated = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            past_key_values=cache,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([StopOnStrings(tokenizer, stop_strings, input_ids.shape[1])] if stop_strings else []),
        )
        outputs += tokenizer.batch_decode(generated[:, input_ids.shape[1] :], skip_special_tokens=True)
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
        input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
        logp = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
        picked = logp[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        results += [picked[row, : len(e) - 1].tolist() for row, e in enumerate(encoded)]
    return results


def verbmem_references(tokenizer, corpus: MuseCorpus) -> list[str]:
    """MUSE's VerbMem reference: the first 128 tokens of each ground-truth continuation."""
    return [
        tokenizer.decode(tokenizer(gt, add_special_tokens=False)["input_ids"][:VERBMEM_NEW_TOKENS], skip_special_tokens=True)
        for _, gt in corpus.verbmem
    ]


def icl_examples(corpus: MuseCorpus, split: str) -> list[tuple[str, str]]:
    return [(qa.question, qa.answer) for qa in corpus.knowmem[f"{split}_qa_icl"]]


def verbmem(model, tokenizer, corpus: MuseCorpus, batch_size: int) -> tuple[float, list[str]]:
    prompts = [prompt for prompt, _ in corpus.verbmem]
    outputs = generate(model, tokenizer, prompts, VERBMEM_NEW_TOKENS, batch_size, "verbmem")
    return mean_rouge_l(outputs, verbmem_references(tokenizer, corpus)), outputs


def knowmem(model, tokenizer, corpus: MuseCorpus, split: str, batch_size: int) -> tuple[float, list[str]]:
    icl = icl_examples(corpus, split)
    questions = corpus.knowmem[f"{split}_qa"]
    prompts = [knowmem_prompt(icl, qa.question) for qa in questions]
    generated = generate(model, tokenizer, prompts, KNOWMEM_NEW_TOKENS, batch_size, f"knowmem-{split}", KNOWMEM_STOPS,
                         icl_prefix(icl))
    outputs = [cut_answer(o) for o in generated]
    return mean_rouge_l(outputs, [qa.answer for qa in questions]), outputs


def mink_scores(model, tokenizer, corpus: MuseCorpus, batch_size: int, max_len: int) -> dict[str, dict[str, list[float]]]:
    """Per text, Min-K% for every k in MINK_FRACTIONS, so AUC can be recomputed for any k without the model."""
    scores = {}
    for split in ("forget", "holdout"):
        scores[split] = mink_table(token_logprobs(model, tokenizer, corpus.privleak[split], batch_size, max_len))
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
        "privleak_auc": mink_auc(mink, mink_k),
        "mink_k": mink_k,
        "mink": mink,
        "outputs": {"verbmem_f": verbmem_outputs, "knowmem_f": knowmem_f_outputs, "knowmem_r": knowmem_r_outputs},
    }


def knowmem_by_split(model, tokenizer, corpus: MuseCorpus, splits: list[str], batch_size: int) -> dict[str, float]:
    """KnowMem on the given splits ({'knowmem_f': ..., 'knowmem_r': ...}): cheap enough to record each epoch."""
    return {f"knowmem_{split[0]}": knowmem(model, tokenizer, corpus, split, batch_size)[0] for split in splits}
