rule summarize:
    input:
        metrics=[
            f"results/metrics/{corpus}/{model}/{precision}.json"
            for corpus in CORPORA
            for model in MODELS
            for precision in PRECISIONS
        ],
        records=[
            f"results/unlearned/{corpus}/{model}.json"
            for corpus in CORPORA
            for model in UNLEARNED
        ],
        mechanism=[
            f"results/mechanism/{corpus}/{model}/{precision}.json"
            for corpus in CORPORA
            for model in UNLEARNED
            for precision in RTN_PRECISIONS
        ],
    output:
        csv="results/summary.csv",
        table="results/summary.txt",
        headline="results/recovery.csv",
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize/summarize.tsv"
    conda:
        "../../envs/qunlearn.yaml"
    params:
        rows=[
            summary_row(corpus, model, precision)
            for corpus in CORPORA
            for model in MODELS
            for precision in PRECISIONS
        ],
        mechanism_rows=[
            dict(corpus=corpus, model=model, **FORMATS[precision])
            for corpus in CORPORA
            for model in UNLEARNED
            for precision in RTN_PRECISIONS
        ],
        auc_retrain={c: config["corpora"][c].get("auc_retrain") for c in CORPORA},
    script:
        "../scripts/summarize.py"
