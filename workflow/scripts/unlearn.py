from functools import partial

from qunlearn.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.evaluation import knowmem_metrics
from qunlearn.io import write_json
from qunlearn.muse import load_corpus
from qunlearn.unlearning import WEIGHT_DTYPES, SureSettings, UnlearnSettings, forgets_like_retrain, unlearn
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
sure = SureSettings(**p.sure) if p.sure else None
settings = UnlearnSettings(**p.settings, sure=sure)
corpus = load_corpus(snakemake.input.corpus)
tokenizer = load_tokenizer(snakemake.input.tokenizer)
weight_dtype = WEIGHT_DTYPES[settings.precision]
model = load_model(snakemake.input.target, weight_dtype)
epoch_metrics = partial(knowmem_metrics, tokenizer=tokenizer, corpus=corpus, metrics=p.epoch_metrics,
                        batch_size=p.eval_batch_size) if p.epoch_metrics else None
stop, threshold = None, {}
if p.checkpoint == "muse":  # the retrain model's KnowMem-forget, measured as the epochs' own
    retrain = load_model(snakemake.input.retrain, weight_dtype)
    threshold = knowmem_metrics(retrain, tokenizer, corpus, ["knowmem_f"], p.eval_batch_size)
    stop = forgets_like_retrain(threshold["knowmem_f"])
    del retrain
record = unlearn(model, tokenizer, corpus.raw["forget"], corpus.raw["retain1"], settings, epoch_metrics, stop)
save_model(model, snakemake.output.model)  # in its unlearning dtype: bf16 rounding on save would erase fp32 updates
write_json(snakemake.output.record, {"settings": {**vars(settings), "sure": p.sure}, **record,
                                     **{f"retrain_{k}": v for k, v in threshold.items()}})
