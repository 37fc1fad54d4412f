from qunlearn.summary import summarize, write_summary
from qunlearn.workflow import start

start(snakemake)
i, p = snakemake.input, snakemake.params
table, samples = summarize(i.metrics, p.rows, list(zip(i.records, p.record_rows, strict=True)), p.auc_retrain,
                           mechanism=list(zip(i.mechanism, p.mechanism_rows, strict=True)), margin=p.margin)
write_summary(table, samples, p.margin, dict(snakemake.output.items()))
