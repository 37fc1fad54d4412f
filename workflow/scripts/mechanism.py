from qunlearn.analysis.mechanism import check_same_shapes, measure, measure_on_load, quantized_weights
from qunlearn.io import write_json
from qunlearn.models.checkpoints import load_state
from qunlearn.workflow import start

start(snakemake)
i = snakemake.input
# Filtered and converted once, shared by every format.
target, unlearned = quantized_weights(load_state(i.target)), quantized_weights(load_state(i.model))
check_same_shapes(target, unlearned)
checkpoints = iter(zip(i.target_quantized, i.quantized, strict=True))  # the saved formats', in order
for fmt, out in zip(snakemake.params.formats, snakemake.output, strict=True):
    if fmt["saved"]:
        target_quantized, quantized = next(checkpoints)
        result = measure(target, unlearned, target_quantized, quantized, fmt["quantizer"], snakemake.params.lr)
    else:
        result = measure_on_load(target, unlearned, fmt["quantizer"], snakemake.params.lr)
    write_json(out, result)
