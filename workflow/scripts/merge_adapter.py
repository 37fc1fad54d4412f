from qunlearn.io import read_json, write_json
from qunlearn.models.checkpoints import load_model, save_model
from qunlearn.unlearn.adapters import merged_with_survival
from qunlearn.workflow import start

start(snakemake)
model, merge = merged_with_survival(load_model(snakemake.input.target, snakemake.params.dtype), snakemake.input.adapter)
save_model(model, snakemake.output.model)
# the adapter's unlearning record, and what the merge kept of its delta
write_json(snakemake.output.record, {**read_json(snakemake.input.record), "serving": snakemake.params.serving,
                                     "merge": merge})
