from qunlearn.data.muse import load_corpus
from qunlearn.data.splits import split_corpus
from qunlearn.io import write_json
from qunlearn.workflow import start

start(snakemake)
write_json(snakemake.output[0], split_corpus(load_corpus(snakemake.input.corpus), snakemake.params.seed).as_json())
