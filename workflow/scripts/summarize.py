from qunlearn.analysis.attacks import attack_verdicts
from qunlearn.analysis.claims import claims, tension_points
from qunlearn.analysis.privleak import mink_scores
from qunlearn.analysis.summary import OWN_WIDTH, at_own_width, summarize, write_summary
from qunlearn.data.splits import ForgetSplit
from qunlearn.io import read_json, write_text
from qunlearn.report.tables import read_paper
from qunlearn.workflow import start

start(snakemake)
i, p = snakemake.input, snakemake.params
table, samples = summarize(i.metrics, p.rows, list(zip(i.records, p.record_rows, strict=True)), p.auc_retrain,
                           mechanism=list(zip(i.mechanism, p.mechanism_rows, strict=True)), margin=p.margin)
write_summary(table, samples, p.margin, dict(snakemake.output.items()))
own = at_own_width(table)  # the claims and attacks are the run's own width's (widths.csv has the ladder)
rows = [(path, row) for path, row in zip(i.metrics, p.rows, strict=True) if row["rung"] == OWN_WIDTH]
splits = {corpus: ForgetSplit.from_json(read_json(path)) for corpus, path in zip(p.split_corpora, i.splits, strict=True)}
write_text(snakemake.output.attacks, attack_verdicts(own, *zip(*rows), splits, p.margin).to_csv(index=False))
write_text(snakemake.output.claims,
           claims(own, samples, p.default_lrs, read_paper(i.paper), p.margin).to_csv(index=False))
write_text(snakemake.output.tension, tension_points(own, samples).to_csv(index=False))
write_text(snakemake.output.mink, mink_scores(*zip(*rows), p.mink_k).to_csv(index=False))
