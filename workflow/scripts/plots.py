import pandas as pd

from qunlearn.analysis.summary import at_own_width, read_summary
from qunlearn.report.figures import draw_all
from qunlearn.report.tables import read_paper
from qunlearn.workflow import start

start(snakemake)
i, p = snakemake.input, snakemake.params
own = at_own_width  # the run's own width: the width ladder has its own figure (widths.png)
draw_all(own(read_summary(i.summary)), own(pd.read_csv(i.recovery)), own(pd.read_csv(i.by_target)), read_paper(i.paper),
         pd.read_csv(i.attacks), pd.read_csv(i.tension),
         pd.read_csv(i.mink), dict(snakemake.output.items()), p.margin)
