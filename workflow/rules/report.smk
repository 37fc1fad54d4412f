rule summarize:
    input:
        metrics=[
            f"results/metrics/{corpus}/{model}/{precision}.json"
            for corpus, model, precision in EVALUATIONS
        ],
        # the grid's unlearning records (audited models have none)
        records=[
            f"results/unlearned/{corpus}/{model}.json"
            for corpus in CORPORA
            for model in UNLEARNED
        ],
        mechanism=[
            f"results/mechanism/{corpus}/{model}/{precision}.json"
            for corpus, model, precision in MEASUREMENTS
        ],
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        long="results/summary_long.csv",
        table="results/summary.txt",
        headline=report(
            "results/recovery.csv",
            caption="../report/recovery.rst",
            category="Tables",
        ),
        verdicts=report(
            "results/verdicts.csv",
            caption="../report/verdicts.rst",
            category="Tables",
        ),
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize/summarize.tsv"
    group:
        "aggregate"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("summarize"),
    params:
        rows=[
            summary_row(corpus, model, precision)
            for corpus, model, precision in EVALUATIONS
        ],
        mechanism_rows=[
            summary_row(corpus, model, precision)
            for corpus, model, precision in MEASUREMENTS
        ],
        auc_retrain={c: config["corpora"][c].get("auc_retrain") for c in CORPORA},
    script:
        "../scripts/summarize.py"


rule tables:
    input:
        "results/summary.csv",
    output:
        main=report(
            "results/tables/main.tex",
            caption="../report/main_table.rst",
            category="Tables",
        ),
        recovery=report(
            "results/tables/recovery.tex",
            caption="../report/recovery_table.rst",
            category="Tables",
        ),
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables/tables.tsv"
    group:
        "aggregate"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("tables"),
    script:
        "../scripts/tables.py"


rule plots:
    input:
        "results/summary.csv",
    output:
        **{
            figure: report(
                f"results/plots/{figure}.png",
                caption=f"../report/{figure}.rst",
                category="Figures",
            )
            for figure in FIGURES
        },
    log:
        "results/logs/plots.log",
    benchmark:
        "results/benchmarks/plots/plots.tsv"
    group:
        "aggregate"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("plots"),
    script:
        "../scripts/plots.py"
