from qunlearn.io import write_json
from qunlearn.mechanism import measure
from qunlearn.workflow import start

start(snakemake)
i = snakemake.input
write_json(snakemake.output[0], measure(i.target, i.model, i.target_quantized, i.quantized, snakemake.params.quantizer))
