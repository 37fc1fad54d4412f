from qunlearn.analysis.calibration import epoch_table, mean_curves, plot_curves, settled_epoch
from qunlearn.io import atomic_path
from qunlearn.workflow import start

start(snakemake)
curves = mean_curves(epoch_table(snakemake.input.records))
chosen = settled_epoch(curves, snakemake.params.tolerance)
with atomic_path(snakemake.output.curves) as staging:
    curves.assign(settled_epoch=chosen).to_csv(staging, index=False)
plot_curves(curves, chosen, snakemake.output.figure)
