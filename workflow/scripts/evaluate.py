from qunlearn.evaluate.evaluator import evaluate_into
from qunlearn.models.checkpoints import load_in_format
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
evaluate_into(snakemake.output[0], load_in_format(snakemake.input.model, p.quantizer), snakemake.input.tokenizer,
              snakemake.input.corpus, p.batch_size, p.mink_k)
