"""Unlearning: L = L_forget(forget batch) + α · L_retain(retain batch) (docs/paper.md §4).

A method is a forget loss and an optional retain regulariser, each one small function here named by its spec in
registry.LOSSES: GA_KLR is `ga` + `klr`. The losses use normalised distributions and sequence log-likelihoods; the reference
code's raw-logit variants are kept as `loss_variant: muse`, to reproduce published numbers. A `_sure` suffix
(GA_KLR_SURE) updates only the modules that the forget loss's gradient marks as salient.
"""

import contextlib
import copy
import itertools
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from .data import Batch, batches, encode_documents, pack
from .precision_stacks import precision_stack
from .registry import LossFn
from .registry import method as method_spec
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
    cache_reference: bool = True  # off where the reference is sharded: see WholeBatches.caches_reference
    _reference_nll: dict = field(default_factory=dict, repr=False)

    def reference_nll(self, batch: Batch) -> torch.Tensor:
        """The frozen reference's sequence NLL of a batch, computed at its first appearance and kept: it never
        changes, and with batch size 1 every later epoch asks for the same batches (a third of NPO's forwards)."""
        if not self.cache_reference:
            with torch.no_grad():
                return sequence_nll(_logits(self.reference, batch), batch.labels)
        key = (tuple(batch.input_ids.shape), batch.input_ids.cpu().numpy().tobytes(),
               batch.attention_mask.cpu().numpy().tobytes())
        if key not in self._reference_nll:
            with torch.no_grad():
                self._reference_nll[key] = sequence_nll(_logits(self.reference, batch), batch.labels)
        return self._reference_nll[key]


# Forget losses: (context, forget batch) -> scalar.
def ga_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    return -mean_nll(_logits(ctx.model, batch), batch.labels)


def npo_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    nll = sequence_nll(_logits(ctx.model, batch), batch.labels)
    return -(2 / ctx.beta) * F.logsigmoid(ctx.beta * (nll - ctx.reference_nll(batch))).mean()


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


# MUSE's code (muse_bench baselines/iterative.py; docs/paper.md §4): raw logits taken for log-probabilities,
# element-wise over every position and vocabulary entry, padding included.
def npo_logits_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = _logits(ctx.model, batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return -(2 / ctx.beta) * F.logsigmoid(ctx.beta * (ref_logits - logits)).mean()


def klr_logits_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = _logits(ctx.model, batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return F.kl_div(logits, ref_logits, reduction="batchmean", log_target=True)



@dataclass
class SureSettings:
    gamma: float  # percentile: modules whose forget-gradient norm is at or above it are updated
    mask: str  # "per_step" (the paper's code) or "once" (chosen before training from the whole forget set)


def step_precision(precision: str, device: torch.device):
    """The context for one optimizer step's forward passes. `mixed` autocasts them to bf16 over fp32 weights.
    Entered per step, never around the loop: autocast keeps its bf16 copies of the weights until the
    outermost context exits, so an enclosing context would feed every later step the step-0 weights."""
    if precision_stack(precision).autocast:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class WholeBatches:
    """How a step's losses are computed: in one process, on the whole global batch. `sharding.RankShares` is the
    same interface for one of several processes that each hold a share of the batch and of the model."""

    caches_reference = True  # one process holds the whole reference (RankShares: no cache, see there)

    def frozen_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(model).eval().requires_grad_(False)

    def forward_context(self, precision: str, device: torch.device):
        return step_precision(precision, device)

    def loss(self, loss_fn: LossFn, ctx: "LossContext", batch: Batch) -> torch.Tensor:
        return loss_fn(ctx, batch.to(ctx.model.device))  # the losses compare logits with the batch's labels

    def total(self, loss: torch.Tensor) -> float:
        """The global batch's loss from this process' part of it."""
        return loss.item()


@dataclass
class UnlearnSettings:
    method: str
    lr: float
    epochs: int
    batch_size: int
    max_len: int
    alpha: float
    beta: float
    precision: str  # a precision stack (registry.STACKS); the model comes in its weight dtype
    seed: int
    loss_variant: str = "standard"
    sure: SureSettings | None = None  # required for a `_sure` method


def module_of(parameter: str) -> str:
    """'model.layers.3.mlp.down_proj.weight' -> 'model.layers.3.mlp.down_proj': SURE's unit."""
    return parameter.rsplit(".", 1)[0]


def module_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of each module that owns parameters (model.layers.3.mlp.down_proj, ...)."""
    squares = defaultdict(list)
    for name, param in model.named_parameters():
        if param.grad is not None:
            squares[module_of(name)].append(param.grad.float().pow(2).sum())
    module_squares = torch.stack([torch.stack(parts).sum() for parts in squares.values()])
    if isinstance(module_squares, DTensor):  # sharded gradients (sharding.py): each rank holds part of every sum
        module_squares = module_squares.full_tensor()
    norms = module_squares.sqrt().tolist()
    return dict(zip(squares, norms))


def salient_modules(norms: dict[str, float], gamma: float) -> set[str]:
    """Modules whose gradient norm is at or above the gamma-th percentile of all modules' norms."""
    threshold = float(np.percentile(list(norms.values()), gamma))
    return {module for module, norm in norms.items() if norm >= threshold}


def mask_gradients(model: torch.nn.Module, keep: set[str]) -> None:
    """Drop the gradients of every module not in `keep`: AdamW skips a parameter without a gradient, so
    neither its update, its weight decay nor its moment estimates move."""
    for name, param in model.named_parameters():
        if module_of(name) not in keep:
            param.grad = None


def forgets_like_retrain(retrain_knowmem_f: float) -> Callable[[dict], bool]:
    """MUSE's checkpoint rule: the earliest epoch whose KnowMem-forget is at or below the retrain model's."""
    return lambda record: record["knowmem_f"] <= retrain_knowmem_f


def unlearn(model, tokenizer, forget_texts: list[str], retain_texts: list[str], settings: UnlearnSettings,
            epoch_metrics: Callable[[torch.nn.Module], dict] | None = None,
            stop: Callable[[dict], bool] | None = None, plan: WholeBatches | None = None) -> dict:
    """Unlearn in place with the precision stack's AdamW at a constant lr; stop cleanly if the loss stops being
    finite.

    After each epoch, `epoch_metrics(model)` adds metrics to the epoch's record, and training ends early once
    `stop(record)` holds (MUSE's checkpoint rule: the earliest epoch that forgets enough). `plan` computes each
    step's losses (default: the whole batch in this process; `sharding.RankShares`: this rank's share)."""
    plan = plan or WholeBatches()
    method = method_spec(settings.method)
    sure = method.sure
    seed_everything(settings.seed)
    rng = random.Random(settings.seed)
    forget_fn = method.forget.implementation(settings.loss_variant)
    retain_fn = method.retain.implementation(settings.loss_variant) if method.retain else None
    reference = plan.frozen_copy(model) if method.frozen else None
    ctx = LossContext(model, reference, settings.beta, plan.caches_reference)
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    forget_chunks = pack(encode_documents(tokenizer, forget_texts), settings.max_len, bos)
    retain_chunks = pack(encode_documents(tokenizer, retain_texts), settings.max_len, bos)
    model.train()
    mask_once = sure and settings.sure.mask == "once"
    fixed_mask = _mask_once(ctx, forget_fn, forget_chunks, settings, pad, plan) if mask_once else None
    selected = Counter({module_of(name): 0 for name, _ in model.named_parameters()})
    optimizer = precision_stack(settings.precision).optimizer(
        [p for p in model.parameters() if p.requires_grad], settings.lr, settings.seed)
    history, diverged_at, steps = [], None, 0
    for epoch in range(1, settings.epochs + 1):
        forget_batches = batches(forget_chunks, settings.batch_size, pad, rng)
        retain_batches = itertools.cycle(batches(retain_chunks, settings.batch_size, pad, rng))
        totals = {"forget": 0.0, "retain": 0.0}
        for forget_batch in forget_batches:
            with plan.forward_context(settings.precision, model.device):
                forget_loss = plan.loss(forget_fn, ctx, forget_batch)
                retain_loss = plan.loss(retain_fn, ctx, next(retain_batches)) if retain_fn else torch.zeros(())
            forget_value, retain_value = plan.total(forget_loss), plan.total(retain_loss)
            if not (math.isfinite(forget_value) and math.isfinite(retain_value)):
                diverged_at = epoch
                break
            forget_loss.backward()
            keep = fixed_mask
            if sure and keep is None:  # the paper's per-step mask, from this step's forget gradient alone
                keep = salient_modules(module_grad_norms(model), settings.sure.gamma)
            if retain_fn:
                (settings.alpha * retain_loss).backward()
            if keep is not None:
                mask_gradients(model, keep)
                selected.update(keep)
            if not _finite_gradients(model):  # a step on inf or NaN gradients would leave weights non-finite
                diverged_at = epoch
                break
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            totals["forget"] += forget_value
            totals["retain"] += retain_value
            steps += 1
        if diverged_at:
            log.warning("loss is not finite in epoch %d: stopping, keeping the last finite weights", epoch)
            break
        record = {"epoch": epoch, **{k: v / len(forget_batches) for k, v in totals.items()}}
        if epoch_metrics:
            model.eval()
            record.update(epoch_metrics(model))
            model.train()
        history.append(record)
        log.info("epoch %d/%d %s", epoch, settings.epochs, {k: round(v, 4) for k, v in record.items()})
        if stop and stop(record):
            log.info("stopping after epoch %d: the checkpoint rule holds", epoch)
            break
    model.eval().requires_grad_(True)
    result = {"history": history, "epochs_run": len(history), "steps": steps, "diverged": diverged_at is not None,
              "diverged_epoch": diverged_at}
    if sure:  # per module, the fraction of steps in which it was updated
        result["sure_modules"] = {module: count / max(steps, 1) for module, count in sorted(selected.items())}
    return result


def _finite_gradients(model: torch.nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


def _mask_once(ctx: LossContext, forget_fn: LossFn, forget_chunks: list[list[int]], settings: UnlearnSettings,
               pad: int, plan: WholeBatches) -> set[str]:
    """The salient modules from the forget loss's gradient over the whole forget set; the others are frozen."""
    for forget_batch in batches(forget_chunks, settings.batch_size, pad, random.Random(settings.seed)):
        with plan.forward_context(settings.precision, ctx.model.device):
            loss = plan.loss(forget_fn, ctx, forget_batch)
        loss.backward()
    keep = salient_modules(module_grad_norms(ctx.model), settings.sure.gamma)
    for name, param in ctx.model.named_parameters():
        param.grad = None
        param.requires_grad_(module_of(name) in keep)
    return keep
