from qunlearn.summary import summarize, write_summary
from qunlearn.workflow import start

start(snakemake)
table, samples = summarize(
    snakemake.input.metrics,
    snakemake.params.rows,
    snakemake.input.records,
    snakemake.params.auc_retrain,
    mechanism=list(zip(snakemake.input.mechanism, snakemake.params.mechanism_rows, strict=True)),
)
o = snakemake.output
write_summary(table, samples, o.csv, o.long, o.table, o.headline, o.verdicts)
