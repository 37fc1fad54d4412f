from qunlearn.analysis.attacks import attack_verdicts
from qunlearn.analysis.claims import claims, tension_points
from qunlearn.analysis.privleak import mink_scores
from qunlearn.analysis.summary import summarize, write_summary
from qunlearn.data.splits import ForgetSplit
from qunlearn.io import read_json, write_text
from qunlearn.report.tables import read_paper
from qunlearn.workflow import start

start(snakemake)
i, p = snakemake.input, snakemake.params
table, samples = summarize(i.metrics, p.rows, list(zip(i.records, p.record_rows, strict=True)), p.auc_retrain,
                           mechanism=list(zip(i.mechanism, p.mechanism_rows, strict=True)), margin=p.margin)
write_summary(table, samples, p.margin, dict(snakemake.output.items()))
splits = {corpus: ForgetSplit.from_json(read_json(path)) for corpus, path in zip(p.split_corpora, i.splits, strict=True)}
write_text(snakemake.output.attacks, attack_verdicts(table, i.metrics, p.rows, splits, p.margin).to_csv(index=False))
write_text(snakemake.output.claims,
           claims(table, samples, p.default_lrs, read_paper(i.paper), p.margin).to_csv(index=False))
write_text(snakemake.output.tension, tension_points(table, samples).to_csv(index=False))
write_text(snakemake.output.mink, mink_scores(i.metrics, p.rows, p.mink_k).to_csv(index=False))
