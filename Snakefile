from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.27")


# A preset given with --configfile is a whole config: it replaces config.yaml instead of merging into it
# (a merge would add config.yaml's corpora and methods to every preset).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/mechanism.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/summary.csv",
        "results/tables/main.tex",
        "results/tables/recovery.tex",
        "results/tables/contrast.tex",
        expand("results/plots/{figure}.png", figure=FIGURES),


onsuccess:
    table = Path("results/summary.txt")
    if table.exists():
        print(table.read_text())
