from qunlearn.evaluate.evaluator import evaluate_into
from qunlearn.models.checkpoints import load_in_format
from qunlearn.unlearn.adapters import served
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
model = served(load_in_format(snakemake.input.target, p.quantizer), snakemake.input.adapter, p.adapter_quantization)
evaluate_into(snakemake.output[0], model, snakemake.input.tokenizer, snakemake.input.corpus, p.batch_size, p.mink_k)
