"""Training the embedded benchmark's tiny Llama models (nanoGPT-style: one readable loop): a base pretrained on
general text, then the target and retrain models fine-tuned from it, as MUSE's are from Llama-2."""

import logging
import math
import os
import random

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.data.batches import batches, encode_documents, shuffled_pack
from qunlearn.models.checkpoints import default_device

log = logging.getLogger(__name__)


def build_llama(vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int, max_position: int, tokenizer,
                seed: int) -> LlamaForCausalLM:
    """A randomly initialised Llama; the seed fixes the initialisation."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_position,
        tie_word_embeddings=False,  # lm_head stays a separate module, excluded from quantization as in Llama-2
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    seed_everything(seed)
    return LlamaForCausalLM(config).to(default_device())


def seed_everything(seed: int) -> None:
    """Seed Python and torch and ask for deterministic kernels: strictly on CPU; on a GPU, where some kernels
    (attention backward, scatter) have no deterministic version, a warning instead of an error."""
    random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for deterministic GEMMs
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def train_lm(model, tokenizer, texts: list[str], epochs: int, batch_size: int, lr: float, train_len: int,
             warmup_steps: int, seed: int) -> list[dict]:
    """Next-token training (pretraining or fine-tuning) with AdamW, linear warm-up and cosine decay; documents are
    re-packed in a new order every epoch."""
    seed_everything(seed)
    rng = random.Random(seed)
    documents = encode_documents(tokenizer, texts)
    steps_per_epoch = math.ceil(len(shuffled_pack(documents, train_len, tokenizer.bos_token_id, random.Random(0))) / batch_size)
    total = epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        chunks = shuffled_pack(documents, train_len, tokenizer.bos_token_id, rng)
        losses = []
        for batch in batches(chunks, batch_size, tokenizer.pad_token_id, rng):
            # bf16 autocast with fp32 master weights: 2.5x faster on CPUs with AMX/AVX512-BF16, and on GPUs.
            batch = batch.to(model.device)
            with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16):
                loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        history.append({"epoch": epoch, "loss": sum(losses) / len(losses)})
        log.info("epoch %d/%d loss %.4f", epoch, epochs, history[-1]["loss"])
    model.eval()
    return history
