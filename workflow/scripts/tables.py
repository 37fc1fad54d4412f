from qunlearn.io import write_text
from qunlearn.summary import read_summary
from qunlearn.tables import main_table, recovery_table
from qunlearn.workflow import start

start(snakemake)
summary = read_summary(snakemake.input[0])
write_text(snakemake.output.main, main_table(summary))
write_text(snakemake.output.recovery, recovery_table(summary))
