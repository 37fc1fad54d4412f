from qunlearn.checkpoints import load_state
from qunlearn.io import write_json
from qunlearn.mechanism import same_code_fraction
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
fractions = same_code_fraction(load_state(snakemake.input.target), load_state(snakemake.input.model), p.bits, p.group_size, p.symmetric)
write_json(snakemake.output[0], fractions)
