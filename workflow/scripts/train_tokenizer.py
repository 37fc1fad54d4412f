from qunlearn.data.tokenizer import train_tokenizer
from qunlearn.io import read_json
from qunlearn.workflow import start

start(snakemake)
# Pretraining text only: every embedded corpus is tokenized alike, and forget and holdout text alike.
train_tokenizer(read_json(snakemake.input[0]), snakemake.params.vocab_size, snakemake.output[0])
