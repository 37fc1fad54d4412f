"""Token chunks for training and unlearning: MUSE's recipe of concatenating, tokenizing and cutting into
chunks of `max_len` tokens with BOS first (docs/paper.md §2)."""

import random
from dataclasses import dataclass

import torch


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 where padded

    def to(self, device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


def encode_documents(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each document, without special tokens, each followed by EOS."""
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def pack(documents: list[list[int]], max_len: int, bos_id: int) -> list[list[int]]:
    """Concatenate the documents and cut into chunks of max_len tokens, BOS first; the last may be shorter."""
    stream = [token for doc in documents for token in doc]
    step = max_len - 1
    return [[bos_id] + stream[start : start + step] for start in range(0, len(stream), step)]


def shuffled_pack(documents: list[list[int]], max_len: int, bos_id: int, rng: random.Random) -> list[list[int]]:
    """Pack in a fresh document order, so that each document is seen after varied contexts across epochs."""
    order = list(range(len(documents)))
    rng.shuffle(order)
    return pack([documents[i] for i in order], max_len, bos_id)


def collate(chunks: list[list[int]], pad_id: int) -> Batch:
    width = max(len(chunk) for chunk in chunks)
    input_ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, chunk in enumerate(chunks):
        input_ids[row, : len(chunk)] = torch.tensor(chunk)
        attention_mask[row, : len(chunk)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return Batch(input_ids, attention_mask, labels)


def batches(chunks: list[list[int]], batch_size: int, pad_id: int, rng: random.Random) -> list[Batch]:
    order = list(range(len(chunks)))
    rng.shuffle(order)
    return [collate([chunks[i] for i in order[s : s + batch_size]], pad_id) for s in range(0, len(order), batch_size)]
