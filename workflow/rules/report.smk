rule summarize:
    input:
        metrics=[
            f"results/metrics/{model.folder}/{format_id}.json"
            for model, format_id in EVALUATIONS
        ],
        # the grid's unlearning records (audited models have none)
        records=[
            record_of(model) for model in UNLEARNED_MODELS if model.role == "unlearned"
        ],
        mechanism=[
            f"results/mechanism/{model.folder}/{format_id}.json"
            for model, format_id in MEASUREMENTS
        ],
        # the held-out halves the attacks are scored on (none without attacks)
        splits=expand(
            "results/splits/{corpus}.json", corpus=CORPORA if ATTACK_SPECS else []
        ),
        paper=PAPER_TABLE,
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        long="results/summary_long.csv",
        text="results/summary.txt",
        headline=report(
            "results/recovery.csv",
            caption="../report/recovery.rst",
            category="Answer",
        ),
        by_target=report(
            "results/recovery_by_target.csv",
            caption="../report/recovery_by_target.rst",
            category="Tables",
        ),
        by_method=report(
            "results/recovery_by_method.csv",
            caption="../report/recovery_by_method.rst",
            category="Tables",
        ),
        contrast=report(
            "results/contrast.csv",
            caption="../report/contrast.rst",
            category="Tables",
        ),
        verdicts=report(
            "results/verdicts.csv",
            caption="../report/verdicts.rst",
            category="Tables",
        ),
        attacks=report(
            "results/attacks.csv",
            caption="../report/attacks.rst",
            category="Tables",
        ),
        claims=report(
            "results/claims.csv",
            caption="../report/claims.rst",
            category="Answer",
        ),
        tension="results/tension.csv",
        mink="results/mink_scores.csv",
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize/summarize.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("summarize"),
    params:
        rows=[
            PROVENANCE.summary_row(model, format_id)
            for model, format_id in EVALUATIONS
        ],
        record_rows=[
            PROVENANCE.summary_row(model, "full")
            for model in UNLEARNED_MODELS
            if model.role == "unlearned"
        ],
        mechanism_rows=[
            PROVENANCE.summary_row(model, format_id)
            for model, format_id in MEASUREMENTS
        ],
        auc_retrain={c: config["corpora"][c].get("auc_retrain") for c in CORPORA},
        margin=config["report"]["margin"],
        split_corpora=CORPORA if ATTACK_SPECS else [],
        # the lrs the method claims are read at (method_lrs' other lrs feed the lr claim)
        default_lrs=config["unlearning"]["lrs"],
        mink_k=config["evaluation"]["mink_k"],
    script:
        "../scripts/summarize.py"


rule tables:
    input:
        summary="results/summary.csv",
        recovery="results/recovery.csv",
        contrast="results/contrast.csv",
        paper=PAPER_TABLE,
        attacks="results/attacks.csv",
        claims="results/claims.csv",
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
        contrast=report(
            "results/tables/contrast.tex",
            caption="../report/contrast_table.rst",
            category="Tables",
        ),
        paper=report(
            "results/tables/paper.tex",
            caption="../report/paper_table.rst",
            category="Tables",
        ),
        attacks=report(
            "results/tables/attacks.tex",
            caption="../report/attacks_table.rst",
            category="Tables",
        ),
        claims=report(
            "results/tables/claims.tex",
            caption="../report/claims_table.rst",
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
        summary="results/summary.csv",
        recovery="results/recovery.csv",
        by_target="results/recovery_by_target.csv",
        paper=PAPER_TABLE,
        attacks="results/attacks.csv",
        tension="results/tension.csv",
        mink="results/mink_scores.csv",
    output:
        **{
            figure: report(
                f"results/plots/{figure}.png",
                caption=f"../report/{figure}.rst",
                # the headline figure first: the report sorts categories by name
                category=spec.category,
            )
            for figure, spec in FIGURES.items()
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
    params:
        margin=config["report"]["margin"],
    script:
        "../scripts/plots.py"


# How many epochs unlearning needs (docs/calibration.md): asked for by name, never part of `all`:
#   snakemake --configfile presets/unlearning-length.yaml --cores 2 results/calibration/unlearning-length.csv
rule unlearning_length:
    input:
        records=[
            record_of(model) for model in UNLEARNED_MODELS if model.role == "unlearned"
        ],
        targets=[
            f"results/metrics/{model.folder}/full.json"
            for model in MODELS
            if model.role == "target"
        ],
    output:
        curves="results/calibration/unlearning-length.csv",
        figure="results/calibration/unlearning-length.png",
    log:
        "results/logs/unlearning_length.log",
    benchmark:
        "results/benchmarks/unlearning_length/unlearning_length.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("unlearning_length"),
    params:
        tolerance=config["report"]["settled_tolerance"],
    script:
        "../scripts/unlearning_length.py"


# The width ladder's answer (model.widths; docs/calibration.md): per width the calibration rule's reading of its
# targets, the recovery change, the surviving update and the stack's change minus fp32's; a fit against log
# parameter count, extrapolated to Llama-2-7B's size; its table and figure.
rule widths:
    input:
        summary="results/summary.csv",
        recovery="results/recovery.csv",
        contrast="results/contrast.csv",
        paper=PAPER_TABLE,
    output:
        calibration="results/calibration/widths.csv",
        ladder="results/widths.csv",
        fits="results/widths_fit.csv",
        table=report(
            "results/tables/widths.tex",
            caption="../report/widths_table.rst",
            category="Tables",
        ),
        figure=report(
            "results/plots/widths.png",
            caption="../report/widths.rst",
            category="Figures",
        ),
    log:
        "results/logs/widths.log",
    benchmark:
        "results/benchmarks/widths/widths.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        **job_resources("widths"),
    params:
        parameters=ladder_parameters(config["model"], config["tokenizer"]["vocab_size"]),
    script:
        "../scripts/widths.py"
