from qunlearn.data.synthetic import write_corpus
from qunlearn.workflow import start

start(snakemake)
write_corpus(snakemake.output[0], seed=snakemake.params.seed, **snakemake.params.spec)
