rule generate_corpus:
    output:
        directory("results/corpora/{corpus}"),
    log:
        "results/logs/generate_corpus/{corpus}.log",
    benchmark:
        "results/benchmarks/generate_corpus/{corpus}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **job_resources("generate_corpus"),
    params:
        spec=lambda wc: config["corpora"][wc.corpus]["embedded"],
        seed=config["seed"],
    script:
        "../scripts/generate_corpus.py"


rule train_tokenizer:
    input:
        corpus=corpus_dir,
    output:
        directory("results/tokenizers/{corpus}"),
    log:
        "results/logs/train_tokenizer/{corpus}.log",
    benchmark:
        "results/benchmarks/train_tokenizer/{corpus}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **job_resources("train_tokenizer"),
    params:
        vocab_size=config["tokenizer"]["vocab_size"],
    script:
        "../scripts/train_tokenizer.py"
