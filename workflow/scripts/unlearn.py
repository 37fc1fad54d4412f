import torch

from qunlearn.unlearn.job import LocalModels, run
from qunlearn.unlearn.launch import UnlearnJob, launch_sharded
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
job = UnlearnJob(corpus=snakemake.input.corpus, tokenizer=snakemake.input.tokenizer, target=snakemake.input.target,
                 retrain=snakemake.input.get("retrain"), settings=p.settings, sure=p.sure, epoch_metrics=p.epoch_metrics,
                 epoch_metrics_every=p.epoch_metrics_every, eval_batch_size=p.eval_batch_size, checkpoint=p.checkpoint, model_out=snakemake.output.model,
                 record_out=snakemake.output.record, threads=max(1, snakemake.threads // p.shards))
if p.shards == 1:
    run(job, LocalModels(p.settings["precision"], p.settings.get("adapter")))
else:  # one process per shard under torchrun, each with its share of the rule's threads
    launch_sharded(job, p.shards, torch.cuda.device_count() if torch.cuda.is_available() else 0)
