import pandas as pd

from qunlearn.analysis.summary import read_summary
from qunlearn.report.figures import draw_all
from qunlearn.report.tables import read_paper
from qunlearn.workflow import start

start(snakemake)
i = snakemake.input
draw_all(read_summary(i.summary), pd.read_csv(i.recovery), pd.read_csv(i.by_target), read_paper(i.paper),
         pd.read_csv(i.attacks), pd.read_csv(i.tension),
         pd.read_csv(i.mink), dict(snakemake.output.items()), snakemake.params.margin)
