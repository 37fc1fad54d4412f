import pandas as pd

from qunlearn.io import write_text
from qunlearn.tables import main_table, recovery_table
from qunlearn.workflow import start

start(snakemake)
summary = pd.read_csv(snakemake.input[0])
write_text(snakemake.output.main, main_table(summary))
write_text(snakemake.output.recovery, recovery_table(summary))
