from qunlearn.data.synthetic import write_pretraining_corpus
from qunlearn.workflow import start

start(snakemake)
write_pretraining_corpus(snakemake.output[0], **snakemake.params.spec)
