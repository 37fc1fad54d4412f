rule evaluate:
    input:
        unpack(evaluate_input),
    output:
        "results/metrics/{corpus}/{pair}/{model}/{format}.json",
    log:
        "results/logs/evaluate/{corpus}/{pair}/{model}/{format}.log",
    benchmark:
        "results/benchmarks/evaluate/{corpus}/{pair}/{model}/{format}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    threads: config["threads"]
    resources:
        **job_resources("evaluate"),
    params:
        quantizer=lambda wc: quantizer_of(wc.format),
        batch_size=config["evaluation"]["batch_size"],
        mink_k=config["evaluation"]["mink_k"],
    script:
        "../scripts/evaluate.py"
