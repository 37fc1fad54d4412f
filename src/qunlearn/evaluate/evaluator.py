"""Evaluate one model at one precision with MUSE's four metrics: batched greedy generation and log-probs."""

from dataclasses import asdict

import numpy as np
import torch
from tqdm import tqdm
from transformers import Cache
from transformers.cache_utils import StaticLayer

from qunlearn.data.muse import MuseCorpus, load_corpus
from qunlearn.errors import QunlearnError
from qunlearn.evaluate.metrics import (KNOWMEM_STOPS, cut_answer, icl_prefix, knowmem_prompt, mink_auc, mink_table,
                                       rouge_l_scores)
from qunlearn.io import write_json
from qunlearn.models.checkpoints import load_tokenizer
from qunlearn.workflow import package_versions

VERBMEM_NEW_TOKENS = 128
KNOWMEM_NEW_TOKENS = 32
AUTO_BATCH_SIZE = {"cpu": 128, "cuda": 32}
KNOWMEM_SPLITS = {"knowmem_f": "forget", "knowmem_r": "retain"}  # metric name: the QA split it asks
EPOCH_METRICS = ("verbmem_f", *KNOWMEM_SPLITS)  # what unlearning.epoch_metrics may record after each epoch


def batch_size_for(setting: int | str, device: torch.device) -> int:
    """evaluation.batch_size: a number, or 'auto' for the device's default."""
    return AUTO_BATCH_SIZE.get(device.type, 32) if setting == "auto" else int(setting)


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids with exactly one BOS first, whatever the tokenizer's own default."""
    return _encode_all(tokenizer, [text])[0]


def _encode_all(tokenizer, texts: list[str]) -> list[list[int]]:
    return [[tokenizer.bos_token_id] + ids for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _split_at_prefix(prefix_ids: list[int], encoded: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """The shared prefix and each prompt's rest, if every prompt's tokens start with the prefix's tokens
    (true for tokenizers that split at whitespace); otherwise no prefix and the whole prompts."""
    if any(e[: len(prefix_ids)] != prefix_ids or len(e) == len(prefix_ids) for e in encoded):
        return [], encoded
    return prefix_ids, [e[len(prefix_ids) :] for e in encoded]


class _WrittenPositionsLayer(StaticLayer):
    """A preallocated cache layer whose attention reads only the positions written so far. (Reading the whole
    preallocated length at every step costs a tenth of VerbMem's time on CPU; a growing cache that concatenates
    every key at every step costs more than the model.)"""

    def __init__(self, max_cache_len: int):
        super().__init__(max_cache_len)
        self.written = 0

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        self.written += key_states.shape[-2]
        return keys[:, :, : self.written], values[:, :, : self.written]

    def get_mask_sizes(self, query_length: int, *args) -> tuple[int, int]:
        return self.written + query_length, 0


def _prefilled_cache(model, prefix_cache, batch_size: int, length: int) -> Cache:
    """A cache of `length` positions holding the shared prefix's keys and values in every row."""
    cache = Cache(layers=[_WrittenPositionsLayer(length) for _ in range(model.config.num_hidden_layers)])
    if prefix_cache is not None:
        for index, layer in enumerate(prefix_cache.layers):
            cache.update(layer.keys.expand(batch_size, -1, -1, -1), layer.values.expand(batch_size, -1, -1, -1), index)
    return cache


def _eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


def _finished(tokenizer, rows: list[list[int]], eos: set[int], stop_strings: tuple[str, ...]) -> list[bool]:
    """Per row: ended with EOS, or its text contains a stop string. (The Rust tokenizer's batch decode:
    transformers' Python-side decode costs more than the model here.)"""
    texts = tokenizer.backend_tokenizer.decode_batch(rows, skip_special_tokens=True) if stop_strings else [""] * len(rows)
    return [row[-1] in eos or any(stop in text for stop in stop_strings) for row, text in zip(rows, texts, strict=True)]


def _greedy_batch(model, tokenizer, prefix_ids: list[int], prefix_cache, batch: list[list[int]], max_new_tokens: int,
                  stop_strings: tuple[str, ...]) -> list[list[int]]:
    """New token ids for each row of one left-padded batch; a finished row leaves the batch at once."""
    width, device = max(map(len, batch)), model.device
    first_new = len(prefix_ids) + width  # cache position of the first generated token
    step_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in batch], device=device)
    # Padding sits between the shared prefix and each rest; the mask hides it and positions skip it.
    attention_mask = torch.tensor([[1] * len(prefix_ids) + [0] * (width - len(e)) + [1] * (len(e) + max_new_tokens)
                                   for e in batch], device=device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = _prefilled_cache(model, prefix_cache, len(batch), first_new + max_new_tokens)
    cache_position = torch.arange(len(prefix_ids), first_new, device=device)
    eos, active, new_ids = _eos_ids(model), list(range(len(batch))), [[] for _ in batch]
    for step in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=positions[:, cache_position],
                       past_key_values=cache, cache_position=cache_position).logits
        next_ids = logits[:, -1].argmax(-1)
        for row, token in zip(active, next_ids.tolist(), strict=True):
            new_ids[row].append(token)
        done = _finished(tokenizer, [new_ids[row] for row in active], eos, stop_strings)
        keep = [index for index, finished in enumerate(done) if not finished]
        if not keep:
            break
        if len(keep) < len(active):
            kept = torch.tensor(keep, device=device)
            cache.reorder_cache(kept)
            attention_mask, positions, next_ids = attention_mask[kept], positions[kept], next_ids[kept]
            active = [active[index] for index in keep]
        step_ids, cache_position = next_ids[:, None], torch.tensor([first_new + step], device=device)
    return new_ids


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, desc: str,
             stop_strings: tuple[str, ...] = (), shared_prefix: str = "") -> list[str]:
    """Greedy (argmax) continuations of left-padded batches; returns the new tokens decoded without special tokens.

    A row stops at EOS, or once it has produced one of `stop_strings` (callers cut there, so the text they keep
    is the same as with the full `max_new_tokens`). A `shared_prefix` that every prompt starts with (KnowMem's
    10 in-context examples) is encoded once and its key-value cache copied into every row. Written by hand
    rather than with `model.generate`, which keeps finished rows in the batch until the last one ends: dropping
    them halves KnowMem's time."""
    encoded = _encode_all(tokenizer, prompts)
    prefix_ids, rests = _split_at_prefix(_encode(tokenizer, shared_prefix), encoded) if shared_prefix else ([], encoded)
    prefix_cache = model(input_ids=torch.tensor([prefix_ids], device=model.device)).past_key_values if prefix_ids else None
    new_ids = []
    for start in tqdm(range(0, len(rests), batch_size), desc=desc, mininterval=5):
        new_ids += _greedy_batch(model, tokenizer, prefix_ids, prefix_cache, rests[start : start + batch_size],
                                 max_new_tokens, stop_strings)
    return tokenizer.batch_decode(new_ids, skip_special_tokens=True)


@torch.inference_mode()
def token_logprobs(model, tokenizer, texts: list[str], batch_size: int, max_len: int) -> list[list[float]]:
    """Log-probability of each token given its prefix (BOS first), right-padded batches."""
    results = []
    for start in tqdm(range(0, len(texts), batch_size), desc="privleak", mininterval=5):
        encoded = [ids[:max_len] for ids in _encode_all(tokenizer, texts[start : start + batch_size])]
        width = max(map(len, encoded))
        input_ids = torch.tensor([e + [tokenizer.pad_token_id] * (width - len(e)) for e in encoded])
        attention_mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
        input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
        logp = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
        picked = logp[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        results += [picked[row, : len(e) - 1].tolist() for row, e in enumerate(encoded)]
    return results


def verbmem_references(tokenizer, corpus: MuseCorpus) -> list[str]:
    """MUSE's VerbMem reference: each ground truth tokenized with BOS first, cut to its first 128 tokens and
    decoded without special tokens, so 127 content tokens (MUSE counts the BOS among the 128)."""
    ground_truths = [gt for _, gt in corpus.verbmem]
    return [tokenizer.decode(ids[:VERBMEM_NEW_TOKENS], skip_special_tokens=True)
            for ids in _encode_all(tokenizer, ground_truths)]


def icl_examples(corpus: MuseCorpus, split: str) -> list[tuple[str, str]]:
    return [(qa.question, qa.answer) for qa in corpus.knowmem[f"{split}_qa_icl"]]


def verbmem(model, tokenizer, corpus: MuseCorpus, batch_size: int) -> tuple[list[float], list[str]]:
    """Per prompt, the ROUGE-L score (0–100) and the output; VerbMem is the scores' mean."""
    prompts = [prompt for prompt, _ in corpus.verbmem]
    outputs = generate(model, tokenizer, prompts, VERBMEM_NEW_TOKENS, batch_size, "verbmem")
    return rouge_l_scores(outputs, verbmem_references(tokenizer, corpus)), outputs


def knowmem(model, tokenizer, corpus: MuseCorpus, split: str, batch_size: int) -> tuple[list[float], list[str]]:
    """Per question, the ROUGE-L score (0–100) and the answer; KnowMem is the scores' mean."""
    icl = icl_examples(corpus, split)
    questions = corpus.knowmem[f"{split}_qa"]
    prompts = [knowmem_prompt(icl, qa.question) for qa in questions]
    generated = generate(model, tokenizer, prompts, KNOWMEM_NEW_TOKENS, batch_size, f"knowmem-{split}", KNOWMEM_STOPS,
                         icl_prefix(icl))
    outputs = [cut_answer(o) for o in generated]
    return rouge_l_scores(outputs, [qa.answer for qa in questions]), outputs


def mink_scores(model, tokenizer, corpus: MuseCorpus, batch_size: int, max_len: int) -> dict[str, dict[str, list[float]]]:
    """Per text, Min-K% for every k in MINK_FRACTIONS, so AUC can be recomputed for any k without the model."""
    scores = {}
    for split in ("forget", "holdout"):
        scores[split] = mink_table(token_logprobs(model, tokenizer, corpus.privleak[split], batch_size, max_len))
    return scores


def evaluate(model, tokenizer, corpus: MuseCorpus, batch_size: int, mink_k: float) -> dict:
    max_len = model.config.max_position_embeddings
    verbmem_items, verbmem_outputs = verbmem(model, tokenizer, corpus, batch_size)
    knowmem_f_items, knowmem_f_outputs = knowmem(model, tokenizer, corpus, "forget", batch_size)
    knowmem_r_items, knowmem_r_outputs = knowmem(model, tokenizer, corpus, "retain", batch_size)
    mink = mink_scores(model, tokenizer, corpus, batch_size, max_len)
    return {
        "verbmem_f": float(np.mean(verbmem_items)),
        "knowmem_f": float(np.mean(knowmem_f_items)),
        "knowmem_r": float(np.mean(knowmem_r_items)),
        "privleak_auc": mink_auc(mink, mink_k),
        "mink_k": mink_k,
        "mink": mink,
        "outputs": {"verbmem_f": verbmem_outputs, "knowmem_f": knowmem_f_outputs, "knowmem_r": knowmem_r_outputs},
        "items": {"verbmem_f": verbmem_items, "knowmem_f": knowmem_f_items, "knowmem_r": knowmem_r_items},
    }


def epoch_metrics(model, tokenizer, corpus: MuseCorpus, metrics: list[str], batch_size: int) -> dict[str, float]:
    """The given full-precision metrics (of EPOCH_METRICS), as unlearning records them after each epoch."""
    values = {}
    for metric in metrics:
        if metric == "verbmem_f":
            items = verbmem(model, tokenizer, corpus, batch_size)[0]
        else:
            items = knowmem(model, tokenizer, corpus, KNOWMEM_SPLITS[metric], batch_size)[0]
        values[metric] = float(np.mean(items))
    return values


def longest_evaluation_sequences(tokenizer, corpus: MuseCorpus) -> dict[str, int]:
    """Per generation metric, the longest prompt (with BOS) plus its new tokens: the positions a model must have
    trained on for its answers to mean anything."""
    verbmem_prompts = [prompt for prompt, _ in corpus.verbmem]
    lengths = {"verbmem_f": max(map(len, _encode_all(tokenizer, verbmem_prompts))) + VERBMEM_NEW_TOKENS}
    for metric, split in KNOWMEM_SPLITS.items():
        icl = icl_examples(corpus, split)
        prompts = [knowmem_prompt(icl, qa.question) for qa in corpus.knowmem[f"{split}_qa"]]
        lengths[metric] = max(map(len, _encode_all(tokenizer, prompts))) + KNOWMEM_NEW_TOKENS
    return lengths


def check_prompts_fit(tokenizer, corpus: MuseCorpus, trained_len: int, corpus_name: str) -> None:
    """Refuse a training length shorter than an evaluation prompt plus its new tokens: a 10-shot KnowMem prompt
    that runs past the trained positions turns a model that knows every answer into one that answers none."""
    lengths = longest_evaluation_sequences(tokenizer, corpus)
    too_long = {metric: length for metric, length in lengths.items() if length > trained_len}
    if too_long:
        raise QunlearnError(
            f"corpus {corpus_name}: evaluation prompts plus their new tokens reach {too_long} tokens, past the "
            f"{trained_len} positions the models train on (model.train_len)",
            f"set model.train_len to at least {max(too_long.values())}, or shorten the corpus' documents",
        )


def evaluate_into(out: str, model, tokenizer_dir: str, corpus_dir: str, batch_size: int | str, mink_k: float) -> None:
    """What an evaluation job writes: the metrics, with the corpus' layout and split names (a hub snapshot's
    revision shows in them) and the versions of the packages that can change a result."""
    corpus = load_corpus(corpus_dir)
    result = evaluate(model, load_tokenizer(tokenizer_dir), corpus, batch_size_for(batch_size, model.device), mink_k)
    write_json(out, {**result, "corpus_layout": asdict(corpus.layout), "packages": package_versions()})
