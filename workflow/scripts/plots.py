from qunlearn.plots import DRAW
from qunlearn.summary import read_summary
from qunlearn.workflow import start

start(snakemake)
summary = read_summary(snakemake.input[0])
for name, draw in DRAW.items():
    draw(summary, snakemake.output[name])
