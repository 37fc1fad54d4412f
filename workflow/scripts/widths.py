import pandas as pd

from qunlearn.analysis.claims import paper_changes
from qunlearn.analysis.summary import read_summary
from qunlearn.analysis.widths import ladder_fits, ladder_table, paper_point, target_calibration
from qunlearn.io import write_text
from qunlearn.report.figures import width_ladder
from qunlearn.report.tables import read_paper, widths_table
from qunlearn.workflow import start

start(snakemake)
i, o = snakemake.input, snakemake.output
summary = read_summary(i.summary)
ladder = ladder_table(summary, pd.read_csv(i.recovery), pd.read_csv(i.contrast), snakemake.params.parameters)
fits = ladder_fits(ladder)
write_text(o.calibration, target_calibration(summary).to_csv(index=False))
write_text(o.ladder, ladder.to_csv(index=False))
write_text(o.fits, fits.to_csv(index=False))
write_text(o.table, widths_table(ladder))
width_ladder(ladder, fits, paper_point(paper_changes(read_paper(i.paper), 4), summary), o.figure)
