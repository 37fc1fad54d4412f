"""Unlearning one model across the processes of a torchrun job with PyTorch's FSDP2 (docs/paper.md §11).

Each process holds 1/N of every parameter, gradient and AdamW state (`fully_shard` per decoder layer, then the
root); FSDP2 gathers one layer's weights at a time for the forward and backward. Every process draws the same
global batches as one process would (same seeds) and computes the losses on its share of the rows, weighted so
that the ranks' losses add up to the global batch's mean; FSDP2 then sums the ranks' gradients (no averaging),
which gives the one-process gradient up to the order of the additions.
"""

import contextlib
import logging
import os
from typing import Callable

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from qunlearn.data.batches import Batch
from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import DTYPES, load_model, save_model
from qunlearn.registry import LossFn, method
from qunlearn.unlearn.launch import sharded_precision
from qunlearn.unlearn.losses import LossContext

log = logging.getLogger(__name__)


def init_process_group() -> torch.device:
    """Join torchrun's process group (nccl with one GPU per process, gloo on CPU); this process' device."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        return device
    dist.init_process_group("gloo")
    return torch.device("cpu")


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers: the modules transformers never splits across devices (`_no_split_modules`, e.g.
    LlamaDecoderLayer), FSDP2's usual unit (torchtitan and transformers' own FSDP plans shard the same way)."""
    kinds = set(getattr(model, "_no_split_modules", None) or ())
    layers = [module for module in model.modules() if type(module).__name__ in kinds]
    if not layers:
        raise QunlearnError(f"{type(model).__name__} names no decoder layer class (_no_split_modules) to shard by",
                            "unlearn this model with unlearning.shards: 1")
    return layers


def shard(model: torch.nn.Module, mesh: DeviceMesh, compute: str | None = None, reduce: str | None = None):
    """Shard the model in place across the mesh: each decoder layer, then the root (embeddings, final norm, head).
    `compute` and `reduce` are the MixedPrecisionPolicy's dtypes (None: the weights' own)."""
    policy = MixedPrecisionPolicy(param_dtype=DTYPES.get(compute), reduce_dtype=DTYPES.get(reduce))
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for module in model.modules():  # each FSDP unit reduces its own gradients
        if isinstance(module, FSDPModule):
            # Each rank's loss is already its part of the global mean: sum the ranks' gradients, do not average.
            # (A forced sum, because a divide factor of 1 otherwise asks for PREMUL_SUM, which gloo lacks.)
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def _label_tokens(batch: Batch) -> int:
    return int((batch.labels[:, 1:] != -100).sum())


def _attended_positions(batch: Batch) -> int:
    return int(batch.attention_mask.sum())


def _sequences(batch: Batch) -> int:
    return len(batch.input_ids)


# What a loss is a mean over (its spec's `units`), so that a share's mean can be weighted by its part of the global
# count. The raw-logit variants average over rows × positions × vocabulary (or per row), and every share keeps the
# batch's width: per row, as `sequences`.
UNIT_COUNTS: dict[str, Callable[[Batch], int]] = {
    "label_tokens": _label_tokens,
    "sequences": _sequences,
    "attended_positions": _attended_positions,
}


def rows(batch: Batch, index: torch.Tensor) -> Batch:
    return Batch(batch.input_ids[index], batch.attention_mask[index], batch.labels[index])


class RankShares:
    """`unlearning.WholeBatches` for one of several ranks: each step, this rank's contiguous share of the global
    batch's rows, its loss weighted by the share's part of the global batch's tokens (or sequences, or positions,
    whatever the loss averages over), so that the ranks' losses sum to the one-process loss. A rank whose share
    is empty (a last batch with fewer rows than ranks) computes a stand-in row with weight 0: every rank must run
    every forward and backward, which are collectives."""

    # NPO's per-batch cache of the reference's likelihoods stays off: with a sharded reference, a rank that found
    # its share cached while another did not would skip a collective and stall the job. (It only pays at batch
    # size 1, where every epoch repeats the same batches.)
    caches_reference = False

    def __init__(self, reference: torch.nn.Module | None, rank: int, world: int, device: torch.device):
        self.reference, self.rank, self.world, self.device = reference, rank, world, device

    def frozen_copy(self, model: torch.nn.Module) -> torch.nn.Module | None:
        return self.reference

    def forward_context(self, precision: str, device: torch.device):
        return contextlib.nullcontext()  # FSDP2's MixedPrecisionPolicy casts the weights: no autocast on top

    def share(self, batch: Batch) -> tuple[Batch, bool]:
        """This rank's rows of the batch, and whether it has any (otherwise the last row stands in)."""
        index = torch.tensor_split(torch.arange(len(batch.input_ids)), self.world)[self.rank]
        return (rows(batch, index), True) if len(index) else (rows(batch, torch.tensor([-1])), False)

    def loss(self, loss_fn: LossFn, ctx: LossContext, batch: Batch) -> torch.Tensor:
        if loss_fn.units not in UNIT_COUNTS:
            raise QunlearnError(f"{loss_fn.impl} is a mean over {loss_fn.units!r}, which sharding cannot count",
                                f"unlearn with unlearning.shards: 1, or give its spec units in {sorted(UNIT_COUNTS)}")
        share, real = self.share(batch)
        units = UNIT_COUNTS[loss_fn.units]
        weight = units(share) / units(batch) if real else 0.0
        return loss_fn(ctx, share.to(ctx.model.device)) * weight

    def losses(self, ctx: LossContext, step: list[tuple[LossFn, Batch]], together: bool) -> list[torch.Tensor]:
        """A forward per loss, each on this rank's share (a share's rows differ per batch, and an empty share's
        stand-in row must still run every collective forward)."""
        return [self.loss(loss_fn, ctx, batch) for loss_fn, batch in step]

    def total(self, loss: torch.Tensor) -> float:
        value = loss.detach().float().reshape(()).to(self.device, copy=True)  # NCCL reduces GPU tensors only
        dist.all_reduce(value)
        return value.item()


class ShardedModels:
    """Loading, sharding and saving the models of one rank of a torchrun job, for one precision stack."""

    def __init__(self, precision: str):
        self.device = init_process_group()
        self.shards, self.main = dist.get_world_size(), dist.get_rank() == 0
        self.spec = sharded_precision(precision, self.shards)
        self.mesh = init_device_mesh(self.device.type, (self.shards,))
        log.info("%s sharded over %d processes (%s, %s backend)", precision, self.shards, self.device.type,
                 dist.get_backend())

    def _load(self, path: str, dtype: str) -> torch.nn.Module:
        # Loaded on the host, then each rank keeps its shard on its device (fully_shard moves it there).
        return load_model(path, dtype, device_map={"": "cpu"})

    def load(self, path: str) -> torch.nn.Module:
        """A model to train (or to evaluate as the training model is), sharded in the precision's policy."""
        return shard(self._load(path, self.spec.weights), self.mesh, self.spec.compute, self.spec.reduce)

    def plan(self, target: str, method_name: str) -> RankShares:
        """The steps' plan, with the frozen reference for NPO and KLR sharded too (forward only, no optimizer
        state), in its own dtype with no policy."""
        reference = None
        if method(method_name).frozen:
            reference = shard(self._load(target, self.spec.reference), self.mesh).eval().requires_grad_(False)
        return RankShares(reference, dist.get_rank(), self.shards, self.device)

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        """Gather the full weights on rank 0 (in host memory) and save one ordinary safetensors folder there."""
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.main:
            save_model(model, out_dir, state_dict=state)
        dist.barrier()

    def close(self) -> None:
        dist.destroy_process_group()
