import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.27")

# The library, for the config checks below.
sys.path.insert(0, str(Path(workflow.basedir, "src")))
from qunlearn.errors import stop_on_error
from qunlearn.registry import import_extensions
from qunlearn.config.schema import load_schema, validated

# A preset given with --configfile is a whole config: it replaces config.yaml instead of merging into it
# (a merge would add config.yaml's corpora and methods to every preset).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# Numbers written as text (YAML's 3e-5, --config's nested values) become numbers where the schema asks for one,
# and each schema mistake is one line naming its key and the fix; Snakemake's validation then fills the defaults.
# The config's extensions register their own methods, formats, stacks, attacks and figures first: the schema's enums
# are the registry's names.
SCHEMA = str(Path(workflow.basedir, "workflow/schemas/config.schema.yaml"))
with stop_on_error():
    import_extensions(config.get("extensions", []))
    config.update(validated(config, load_schema(SCHEMA)))
validate(config, SCHEMA)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/mechanism.smk"
include: "workflow/rules/adapters.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/summary.csv",
        "results/tables/main.tex",
        "results/tables/recovery.tex",
        "results/tables/contrast.tex",
        "results/tables/paper.tex",
        "results/attacks.csv",
        "results/tables/attacks.tex",
        "results/claims.csv",
        "results/tables/claims.tex",
        expand("results/plots/{figure}.png", figure=FIGURES),
        # the width ladder's answer, where the config has one
        ["results/widths.csv", "results/tables/widths.tex"]
        if rungs(config["model"])
        else [],


onsuccess:
    table = Path("results/summary.txt")
    if table.exists():
        print(table.read_text())
