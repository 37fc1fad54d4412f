"""One unlearning job, from the corpus and the target to the saved model and its record: in the unlearn rule's
own process (`unlearning.shards: 1`), or in each process of a torchrun job, sharded:

    torchrun --standalone --nproc-per-node N -m qunlearn.unlearn.job JOB.json

(`launch.launch_sharded` writes JOB.json, a `launch.UnlearnJob`, and starts it.)
"""

import json
import logging
import os
import sys
from functools import partial
from pathlib import Path

import torch

from qunlearn.data.muse import load_corpus
from qunlearn.errors import QunlearnError
from qunlearn.evaluate.evaluator import epoch_metrics
from qunlearn.io import write_json
from qunlearn.models.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.unlearn.adapters import AdapterSettings, attach, save_adapter
from qunlearn.unlearn.launch import UnlearnJob
from qunlearn.unlearn.loop import UnlearnSettings, forgets_like_retrain, unlearn
from qunlearn.unlearn.stacks import precision_stack
from qunlearn.unlearn.sure import SureSettings


class LocalModels:
    """One process holds the whole model (the counterpart of sharding.ShardedModels)."""

    main, shards = True, 1

    def __init__(self, precision: str, adapter: dict | None = None):
        """The model in its stack's weight dtype; under an adapter, the frozen base in the adapter's base dtype."""
        self.dtype = adapter["base_dtype"] if adapter else precision_stack(precision).weight_dtype

    def load(self, path: str) -> torch.nn.Module:
        return load_model(path, self.dtype)

    def plan(self, target: str, method: str) -> None:
        return None  # unlearn's default: the whole batch, the reference a copy of the model

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        save_model(model, out_dir)  # in its unlearning dtype: bf16 rounding on save would erase fp32 updates

    def close(self) -> None:
        pass


def run(job: UnlearnJob, models) -> None:
    """Unlearn the job's target and save it, with `models` (LocalModels or sharding.ShardedModels)."""
    settings = UnlearnSettings(**job.settings, sure=SureSettings(**job.sure) if job.sure else None)
    corpus, tokenizer = load_corpus(job.corpus), load_tokenizer(job.tokenizer)
    stop, threshold = None, {}
    if job.checkpoint == "muse":  # the retrain model's KnowMem-forget, measured as the epochs' own
        retrain = models.load(job.retrain)
        threshold = epoch_metrics(retrain, tokenizer, corpus, ["knowmem_f"], job.eval_batch_size)
        stop = forgets_like_retrain(threshold["knowmem_f"])
        del retrain
    model = models.load(job.target)
    if settings.adapter:
        model = attach(model, AdapterSettings.of(settings.adapter))
    measure = partial(epoch_metrics, tokenizer=tokenizer, corpus=corpus, metrics=job.epoch_metrics,
                      batch_size=job.eval_batch_size) if job.epoch_metrics else None
    record = unlearn(model, tokenizer, corpus.raw["forget"], corpus.raw["retain1"], settings, measure, stop,
                     models.plan(job.target, settings.method), job.epoch_metrics_every)
    if settings.adapter:  # the adapter alone, in peft's safetensors format
        save_adapter(model, job.model_out)
    else:
        models.save(model, job.model_out)
    if models.main:
        write_json(job.record_out, {"settings": {**vars(settings), "sure": job.sure}, "shards": models.shards, **record,
                                    **{f"retrain_{k}": v for k, v in threshold.items()}})


def main(job_file: str) -> None:
    """A torchrun process: its share of the job (every process evaluates the same prompts, in step)."""
    from qunlearn.unlearn.sharding import ShardedModels  # torch.distributed only where it runs

    job = UnlearnJob(**json.loads(Path(job_file).read_text()))
    rank = int(os.environ["RANK"])
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s rank {rank} %(name)s %(levelname)s %(message)s", force=True)
    logging.captureWarnings(True)
    torch.set_num_threads(job.threads)
    models = ShardedModels(job.settings["precision"])  # never an adapter (config.checks)
    try:
        run(job, models)
    except QunlearnError as error:
        logging.error("%s", error)
        sys.exit(1)
    finally:
        models.close()


if __name__ == "__main__":
    main(sys.argv[1])
