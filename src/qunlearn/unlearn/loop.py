"""The unlearning loop: L = L_forget(forget batch) + α · L_retain(retain batch) (docs/paper.md §4), each loss named
by its method's spec (registry.methods), with the precision stack's AdamW at a constant lr; a `_sure` method updates
only the modules that the forget loss's gradient marks as salient (unlearn/sure.py)."""

import contextlib
import copy
import itertools
import logging
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch

from qunlearn.data.batches import Batch, batches, encode_documents, pack
from qunlearn.models.training import seed_everything
from qunlearn.registry import LossFn
from qunlearn.registry import method as method_spec
from qunlearn.unlearn.adapters import AdapterDisabled
from qunlearn.unlearn.losses import LossContext
from qunlearn.unlearn.stacks import precision_stack
from qunlearn.unlearn.sure import SureSettings, mask_gradients, module_grad_norms, module_of, salient_modules

log = logging.getLogger(__name__)


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

    def frozen_copy(self, model: torch.nn.Module) -> torch.nn.Module | AdapterDisabled:
        """The target as it was: a copy, or under an adapter the model with its adapter off (no second copy)."""
        peft = sys.modules.get("peft")  # only an imported peft makes PeftModels; importing it here costs start-up
        if peft and isinstance(model, peft.PeftModel):
            return AdapterDisabled(model)
        return copy.deepcopy(model).eval().requires_grad_(False)

    def forward_context(self, precision: str, device: torch.device):
        return step_precision(precision, device)

    def loss(self, loss_fn: LossFn, ctx: "LossContext", batch: Batch) -> torch.Tensor:
        return loss_fn(ctx, batch.to(ctx.model.device))  # the losses compare logits with the batch's labels

    def losses(self, ctx: "LossContext", step: list[tuple[LossFn, Batch]], together: bool) -> list[torch.Tensor]:
        """Each of a step's losses on its batch; `together`: the model's logits from one forward over them all."""
        moved = [(loss_fn, batch.to(ctx.model.device)) for loss_fn, batch in step]
        with ctx.forward_together([batch for _, batch in moved]) if together else contextlib.nullcontext():
            return [loss_fn(ctx, batch) for loss_fn, batch in moved]

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
    # the precision stack (registry.STACKS; the model comes in its weight dtype), named as the unlearn rule's params
    # name it, so that a checkpoint unlearned before stays cached
    precision: str
    seed: int
    loss_variant: str = "standard"
    sure: SureSettings | None = None  # required for a `_sure` method
    # unlearning through a LoRA adapter on the frozen target (provenance.unlearn_settings; the loop trains whatever
    # requires a gradient, so only the adapter's weights move): None for full weights
    adapter: dict | None = None


def forgets_like_retrain(retrain_knowmem_f: float) -> Callable[[dict], bool]:
    """MUSE's checkpoint rule: the earliest epoch whose KnowMem-forget is at or below the retrain model's."""
    return lambda record: record["knowmem_f"] <= retrain_knowmem_f


def unlearn(model, tokenizer, forget_texts: list[str], retain_texts: list[str], settings: UnlearnSettings,
            epoch_metrics: Callable[[torch.nn.Module], dict] | None = None,
            stop: Callable[[dict], bool] | None = None, plan: WholeBatches | None = None,
            measure_every: int = 1) -> dict:
    """Unlearn in place with the precision stack's AdamW at a constant lr; stop cleanly if the loss stops being
    finite.

    After every `measure_every`-th epoch and the last, `epoch_metrics(model)` adds metrics to the epoch's record,
    and training ends early once `stop(record)` holds on such an epoch (MUSE's checkpoint rule: the earliest epoch
    that forgets enough). `plan` computes each step's losses (default: the whole batch in this process;
    `sharding.RankShares`: this rank's share)."""
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
    per_step_mask = sure and not mask_once
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
            step = [(forget_fn, forget_batch)] + ([(retain_fn, next(retain_batches))] if retain_fn else [])
            with plan.forward_context(settings.precision, model.device):
                # SURE's per-step mask needs the forget loss's gradient alone: its losses keep separate passes
                forget_loss, *retain = plan.losses(ctx, step, together=not per_step_mask)
            retain_loss = retain[0] if retain else torch.zeros(())
            forget_value, retain_value = plan.total(forget_loss), plan.total(retain_loss)
            if not (math.isfinite(forget_value) and math.isfinite(retain_value)):
                diverged_at = epoch
                break
            keep = fixed_mask
            if per_step_mask:  # the paper's per-step mask, from this step's forget gradient alone
                forget_loss.backward()
                keep = salient_modules(module_grad_norms(model), settings.sure.gamma)
                if retain:
                    (settings.alpha * retain_loss).backward()
            else:
                (forget_loss + settings.alpha * retain_loss).backward()
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
        measured = epoch_metrics is not None and (epoch % measure_every == 0 or epoch == settings.epochs)
        if measured:
            model.eval()
            record.update(epoch_metrics(model))
            model.train()
        history.append(record)
        log.info("epoch %d/%d %s", epoch, settings.epochs, {k: round(v, 4) for k, v in record.items()})
        if stop and measured and stop(record):
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
