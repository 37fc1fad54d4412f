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


# The base model's general text: the generator with its own seeds and its own half of the name space.
rule generate_pretraining_corpus:
    output:
        "results/pretraining/corpus.json",
    log:
        "results/logs/generate_pretraining_corpus.log",
    benchmark:
        "results/benchmarks/generate_pretraining_corpus/generate_pretraining_corpus.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **job_resources("generate_pretraining_corpus"),
    params:
        spec=config["model"]["pretrain"]["corpus"],
    script:
        "../scripts/generate_pretraining_corpus.py"


# One tokenizer for the base model and every embedded corpus, as Llama-2's serves MUSE's NEWS and BOOKS.
rule train_tokenizer:
    input:
        "results/pretraining/corpus.json",
    output:
        directory("results/tokenizer"),
    log:
        "results/logs/train_tokenizer.log",
    benchmark:
        "results/benchmarks/train_tokenizer/train_tokenizer.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **job_resources("train_tokenizer"),
    params:
        vocab_size=config["tokenizer"]["vocab_size"],
    script:
        "../scripts/train_tokenizer.py"
