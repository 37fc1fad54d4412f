"""Starting a sharded unlearning job (`unlearning.shards` > 1) under torchrun, and the checks that need no torch.

The config-time check (`check_shards`) runs before any job; `launch_sharded` runs in the unlearn rule's job and
starts one process per shard on this machine (`torchrun --standalone`), each running `qunlearn.unlearn.job`.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from qunlearn.errors import QunlearnError
from qunlearn.registry import STACKS, ShardedPrecision


def sharded_stacks() -> dict[str, ShardedPrecision]:
    """The stacks whose spec has an FSDP2 mapping, by name."""
    return {name: stack.sharded for name, stack in STACKS.items() if stack.sharded}


def sharded_precision(precision: str, shards: int) -> ShardedPrecision:
    if precision not in sharded_stacks():
        raise QunlearnError(
            f"unlearning.precisions: {precision} has no FSDP2 mapping, so it cannot run with unlearning.shards: {shards}",
            f"unlearn {precision} with unlearning.shards: 1, or shard only {', '.join(sharded_stacks())}",
        )
    return sharded_stacks()[precision]


def check_layers(shards: int, layers: int, where: str) -> None:
    """A sanity bound, not an FSDP2 limit: more processes than decoder layers is almost surely a typo (shards: 64
    for a 2-layer model), and each would hold a sliver of every tensor while paying for every collective."""
    if shards > layers:
        raise QunlearnError(f"unlearning.shards: {shards} is more than the {layers} decoder layers of {where}",
                            f"set unlearning.shards to at most {layers}")


def check_shards(config: dict, stacks: list[str]) -> None:
    """Config-time checks of `unlearning.shards` (no torch): every precision stack the grid unlearns in has an
    FSDP2 mapping, the embedded model has at least as many decoder layers, and a job asking for GPUs asks for one
    per shard."""
    shards = config["unlearning"].get("shards", 1)
    if shards == 1:
        return
    for precision in stacks:
        sharded_precision(precision, shards)
    if any("embedded" in spec for spec in config["corpora"].values()):
        check_layers(shards, config["model"]["layers"], "the embedded model (model.layers)")
    resources = config.get("resources", {})
    gpus = {**resources.get("default", {}), **resources.get("unlearn", {})}.get("gpu", 0)
    if 0 < gpus < shards:
        raise QunlearnError(f"unlearning.shards: {shards} needs one GPU per shard, but resources.unlearn.gpu is {gpus}",
                            f"set resources.unlearn.gpu: {shards}, or unlearning.shards: {gpus}")


@dataclass(frozen=True)
class UnlearnJob:
    """One unlearning job's inputs, settings and outputs: what the unlearn rule hands to `job.run`, in its
    own process or, as JSON, in each torchrun process."""
    corpus: str
    tokenizer: str
    target: str
    retrain: str | None  # for MUSE's checkpoint rule
    settings: dict  # UnlearnSettings' fields, without sure
    sure: dict | None
    epoch_metrics: list[str]
    epoch_metrics_every: int
    eval_batch_size: int
    checkpoint: str
    model_out: str
    record_out: str
    threads: int  # torch threads of each process


def check_launch(job: UnlearnJob, shards: int, cuda_devices: int) -> None:
    """Run-time checks before any process starts: the target's layers, one GPU per shard (when there are GPUs),
    and torchrun itself."""
    sharded_precision(job.settings["precision"], shards)
    config = Path(job.target, "config.json")  # a folder without one is refused when the model loads
    layers = json.loads(config.read_text()).get("num_hidden_layers") if config.is_file() else None
    if layers:
        check_layers(shards, layers, f"the target {job.target}")
    if 0 < cuda_devices < shards:
        raise QunlearnError(f"unlearning.shards: {shards} needs {shards} GPUs, but this job sees {cuda_devices}",
                            f"ask for {shards} GPUs (resources.unlearn.gpu: {shards}; --resources gpu=N on one machine), "
                            f"or set unlearning.shards: {cuda_devices}")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torch.distributed.run") is None:
        raise QunlearnError(f"unlearning.shards: {shards} needs torchrun (torch.distributed.run), which this "
                            "environment's torch lacks", "install torch from PyPI (its wheels include it), or set "
                            "unlearning.shards: 1")


def launch_sharded(job: UnlearnJob, shards: int, cuda_devices: int) -> None:
    """Run the job in `shards` processes on this machine under torchrun; their output goes to this process'
    stdout and stderr (the rule's log)."""
    check_launch(job, shards, cuda_devices)
    with tempfile.TemporaryDirectory(prefix="qunlearn-unlearn-") as folder:
        job_file = Path(folder, "job.json")
        job_file.write_text(json.dumps(asdict(job)))
        # `python -m torch.distributed.run` is torchrun, found without PATH (a venv's bin need not be on it).
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(shards),
                   "-m", "qunlearn.unlearn.job", str(job_file)]
        done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(job.threads)})
    if done.returncode:
        raise QunlearnError(f"sharded unlearning of {job.model_out} failed (torchrun exit status {done.returncode})",
                            "the failing process' error is above it in the rule's log")
