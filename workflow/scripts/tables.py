import pandas as pd

from qunlearn.analysis.summary import at_own_width, read_summary, unattacked
from qunlearn.io import write_text
from qunlearn.report.tables import (attacks_table, claims_table, contrast_table, main_table, paper_comparison,
                                    paper_table, per_model_ratios_table, read_paper, recovery_table)
from qunlearn.workflow import start

start(snakemake)
i, o = snakemake.input, snakemake.output
# the run's own width (the width ladder's table is widths.tex); the attacked models' table is attacks.tex
summary = at_own_width(unattacked(read_summary(i.summary)))
write_text(o.main, main_table(summary))
write_text(o.recovery, f"{recovery_table(at_own_width(pd.read_csv(i.recovery)))}\n% Per model\n{per_model_ratios_table(summary)}")
write_text(o.contrast, contrast_table(at_own_width(pd.read_csv(i.contrast))))
write_text(o.paper, paper_table(paper_comparison(summary, read_paper(i.paper))))
write_text(o.attacks, attacks_table(pd.read_csv(i.attacks)))
write_text(o.claims, claims_table(pd.read_csv(i.claims)))
