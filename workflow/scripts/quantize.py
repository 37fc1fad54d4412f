from qunlearn.quantization import quantize_and_save
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
quantize_and_save(snakemake.input.model, snakemake.output[0], p.quantizer, p.bits, p.group_size, p.symmetric)
