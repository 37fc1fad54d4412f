import pandas as pd

from qunlearn.plots import DRAW
from qunlearn.workflow import start

start(snakemake)
summary = pd.read_csv(snakemake.input[0])
for name, draw in DRAW.items():
    draw(summary, snakemake.output[name])
