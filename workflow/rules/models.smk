# Only for embedded corpora: real MUSE corpora name their target and retrain models by path.
rule train_model:
    input:
        corpus=corpus_dir,
        tokenizer=tokenizer_dir,
    output:
        directory("results/models/{corpus}/{role}"),
    log:
        "results/logs/train_model/{corpus}/{role}.log",
    benchmark:
        "results/benchmarks/train_model/{corpus}/{role}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    resources:
        **job_resources("train_model"),
    params:
        model=config["model"],
        seed=config["seed"],
    script:
        "../scripts/train_model.py"
