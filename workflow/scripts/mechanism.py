from qunlearn.checkpoints import load_state
from qunlearn.io import write_json
from qunlearn.mechanism import measure, quantized_weights
from qunlearn.workflow import start

start(snakemake)
i = snakemake.input
# Filtered and converted once, shared by every format.
target, unlearned = quantized_weights(load_state(i.target)), quantized_weights(load_state(i.model))
for target_quantized, quantized, quantizer, out in zip(i.target_quantized, i.quantized, snakemake.params.quantizers,
                                                       snakemake.output, strict=True):
    write_json(out, measure(target, unlearned, target_quantized, quantized, quantizer))
