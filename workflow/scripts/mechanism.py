from qunlearn.checkpoints import load_state
from qunlearn.io import write_json
from qunlearn.mechanism import measure
from qunlearn.workflow import start

start(snakemake)
i = snakemake.input
target, unlearned = load_state(i.target), load_state(i.model)
for target_quantized, quantized, quantizer, out in zip(i.target_quantized, i.quantized, snakemake.params.quantizers,
                                                       snakemake.output, strict=True):
    write_json(out, measure(target, unlearned, target_quantized, quantized, quantizer))
