"""Unlearning: L = L_forget(forget batch) + α · L_retain(retain batch) (REFERENCE.md §4).

A method is a forget loss and an optional retain regulariser, each one small function in a registry:
GA_KLR is `ga` + `klr`. The losses use normalised distributions and sequence log-likelihoods, not the
reference code's raw-logit variants.
"""

import copy
import itertools
import logging
import math
import random
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .data import Batch, batches, encode_documents, pack
from .training import seed_everything

log = logging.getLogger(__name__)


def _logits(model, batch: Batch) -> torch.Tensor:
    batch = batch.to(model.device)
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token negative log-likelihood per position, [batch, len-1]; 0 where the label is masked."""
    shifted_labels = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), shifted_labels.clamp(min=0), reduction="none")
    return nll * (shifted_labels != -100)


def mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_nll(logits, labels).sum() / (labels[:, 1:] != -100).sum()


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_nll(logits, labels).sum(dim=1)


@dataclass
class LossContext:
    model: torch.nn.Module
    reference: torch.nn.Module | None  # the frozen target, for NPO and KLR
    beta: float


# Forget losses: (context, forget batch) -> scalar.
def ga_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    return -mean_nll(_logits(ctx.model, batch), batch.labels)


def npo_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    nll = sequence_nll(_logits(ctx.model, batch), batch.labels)
    with torch.no_grad():
        nll_ref = sequence_nll(_logits(ctx.reference, batch), batch.labels)
    return -(2 / ctx.beta) * F.logsigmoid(ctx.beta * (nll - nll_ref)).mean()


# Retain regularisers: (context, retain batch) -> scalar, weighted by α.
def gdr_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    return mean_nll(_logits(ctx.model, batch), batch.labels)


def kl_divergence(ref_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) per position, averaged over the positions where mask is true."""
    ref_logp, logp = F.log_softmax(ref_logits, -1), F.log_softmax(logits, -1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (per_token * mask).sum() / mask.sum()


def klr_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = _logits(ctx.model, batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return kl_divergence(ref_logits, logits, batch.attention_mask.bool())


FORGET_LOSSES: dict[str, Callable] = {"ga": ga_loss, "npo": npo_loss}
RETAIN_LOSSES: dict[str, Callable] = {"gdr": gdr_loss, "klr": klr_loss}
METHODS: dict[str, tuple[str, str | None]] = {
    f"{forget}{'_' + retain if retain else ''}": (forget, retain)
    for forget in FORGET_LOSSES
    for retain in (None, *RETAIN_LOSSES)
}


def needs_reference(method: str) -> bool:
    forget, retain = METHODS[method]
    return forget == "npo" or retain == "klr"


@dataclass
class UnlearnSettings:
    method: str
    lr: float
    epochs: int
    batch_size: int
    max_len: int
    alpha: float
    beta: float
    dtype: str
    seed: int


def unlearn(model, tokenizer, forget_texts: list[str], retain_texts: list[str], settings: UnlearnSettings) -> dict:
    """Unlearn in place with AdamW at a constant lr; stop cleanly if the loss stops being finite."""
    if settings.method not in METHODS:
        raise ValueError(f"unknown method {settings.method!r}; valid: {sorted(METHODS)}")
    seed_everything(settings.seed)
    rng = random.Random(settings.seed)
    forget_name, retain_name = METHODS[settings.method]
    reference = copy.deepcopy(model).eval().requires_grad_(False) if needs_reference(settings.method) else None
    ctx = LossContext(model, reference, settings.beta)
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    forget_chunks = pack(encode_documents(tokenizer, forget_texts), settings.max_len, bos)
    retain_chunks = pack(encode_documents(tokenizer, retain_texts), settings.max_len, bos)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    model.train()
    history, diverged_at = [], None
    for epoch in range(1, settings.epochs + 1):
        forget_batches = batches(forget_chunks, settings.batch_size, pad, rng)
        retain_batches = itertools.cycle(batches(retain_chunks, settings.batch_size, pad, rng))
        totals = {"forget": 0.0, "retain": 0.0}
        for forget_batch in forget_batches:
            forget_loss = FORGET_LOSSES[forget_name](ctx, forget_batch)
            loss = forget_loss
            if retain_name:
                retain_loss = RETAIN_LOSSES[retain_name](ctx, next(retain_batches))
                loss = loss + settings.alpha * retain_loss
                totals["retain"] += retain_loss.item()
            if not math.isfinite(loss.item()):
                diverged_at = epoch
                break
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            totals["forget"] += forget_loss.item()
        if diverged_at:
            log.warning("loss is not finite in epoch %d: stopping, keeping the last finite weights", epoch)
            break
        history.append({"epoch": epoch, **{k: v / len(forget_batches) for k, v in totals.items()}})
        log.info("epoch %d/%d forget %.4f retain %.4f", epoch, settings.epochs, history[-1]["forget"], history[-1]["retain"])
    model.eval()
    return {"history": history, "diverged": diverged_at is not None, "diverged_epoch": diverged_at}
