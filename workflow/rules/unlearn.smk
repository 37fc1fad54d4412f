rule unlearn:
    input:
        corpus=corpus_dir,
        tokenizer=tokenizer_dir,
        target=target_dir,
    output:
        model=directory("results/unlearned/{corpus}/{unlearned}"),
        record="results/unlearned/{corpus}/{unlearned}.json",
    log:
        "results/logs/unlearn/{corpus}/{unlearned}.log",
    benchmark:
        "results/benchmarks/unlearn/{corpus}/{unlearned}.tsv"
    conda:
        "../../envs/qunlearn.yaml"
    threads: config["threads"]
    params:
        settings=lambda wc: unlearn_settings(wc.unlearned),
        seed=config["seed"],
    script:
        "../scripts/unlearn.py"
