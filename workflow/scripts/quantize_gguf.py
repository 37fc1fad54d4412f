from qunlearn.quantize.gguf import quantize_gguf
from qunlearn.workflow import start

start(snakemake)
quantize_gguf(snakemake.input.model, snakemake.input.tokenizer, snakemake.output[0], snakemake.params.quantizer,
              snakemake.threads)
