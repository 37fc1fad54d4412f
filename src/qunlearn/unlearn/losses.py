"""The losses, each named by its spec in registry.LOSSES (docs/paper.md §4): a method is a forget loss and an optional
retain regulariser, GA_KLR is `ga` + `klr`. The losses use normalised distributions and sequence log-likelihoods;
the reference code's raw-logit variants are kept as `loss_variant: muse`, to reproduce published numbers."""

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from qunlearn.data.batches import Batch


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
    _together: list = field(default_factory=list, repr=False)  # (batch, its rows of the step's one forward)

    def logits(self, batch: Batch) -> torch.Tensor:
        """The model's logits for a batch: its rows of the step's one forward (`forward_together`) where it was
        one of that forward's batches, else a forward of its own."""
        for joined, rows in self._together:
            if joined is batch:
                return rows
        return _logits(self.model, batch)

    @contextmanager
    def forward_together(self, batches: list[Batch]):
        """One forward pass over a step's batches (forget and retain) instead of one each: fewer, larger matrix
        products for the same logits. Rows are right-padded to a common width, masked out in the attention mask, so
        each row's logits are those of its own batch's forward (in floating point within rounding of it: the
        matrix products are blocked differently)."""
        width = max(batch.input_ids.shape[1] for batch in batches)
        input_ids = torch.cat([F.pad(batch.input_ids, (0, width - batch.input_ids.shape[1])) for batch in batches])
        mask = torch.cat([F.pad(batch.attention_mask, (0, width - batch.input_ids.shape[1])) for batch in batches])
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
        rows = logits.split([len(batch.input_ids) for batch in batches])
        self._together = [(batch, part[:, : batch.input_ids.shape[1]]) for batch, part in zip(batches, rows)]
        try:
            yield
        finally:
            self._together = []

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
    return -mean_nll(ctx.logits(batch), batch.labels)


def npo_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    nll = sequence_nll(ctx.logits(batch), batch.labels)
    return -(2 / ctx.beta) * F.logsigmoid(ctx.beta * (nll - ctx.reference_nll(batch))).mean()


# Retain regularisers: (context, retain batch) -> scalar, weighted by α.
def gdr_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    return mean_nll(ctx.logits(batch), batch.labels)


def kl_divergence(ref_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) per position, averaged over the positions where mask is true."""
    ref_logp, logp = F.log_softmax(ref_logits, -1), F.log_softmax(logits, -1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (per_token * mask).sum() / mask.sum()


def klr_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = ctx.logits(batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return kl_divergence(ref_logits, logits, batch.attention_mask.bool())


# MUSE's code (muse_bench baselines/iterative.py; docs/paper.md §4): raw logits taken for log-probabilities,
# element-wise over every position and vocabulary entry, padding included.
def npo_logits_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = ctx.logits(batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return -(2 / ctx.beta) * F.logsigmoid(ctx.beta * (ref_logits - logits)).mean()


def klr_logits_loss(ctx: LossContext, batch: Batch) -> torch.Tensor:
    logits = ctx.logits(batch)
    with torch.no_grad():
        ref_logits = _logits(ctx.reference, batch)
    return F.kl_div(logits, ref_logits, reduction="batchmean", log_target=True)
