# Only for embedded corpora: real MUSE corpora name their target and retrain models by path. One base per width:
# results/models/base at the run's own, base-w512 at a rung of the width ladder (model.widths).
rule pretrain:
    input:
        corpus="results/pretraining/corpus.json",
        tokenizer="results/tokenizer",
    output:
        directory("results/models/{base}"),
    log:
        "results/logs/pretrain/{base}.log",
    benchmark:
        "results/benchmarks/pretrain/{base}.tsv"
    conda:
        "../../envs/train.yaml"
    # Every other model waits for this one, so it may take more threads than the others.
    threads: config["model"]["pretrain"]["threads"]
    resources:
        **job_resources("pretrain"),
    params:
        architecture=lambda wc: PROVENANCE.architecture(parse_base_folder(wc.base)),
        training=lambda wc: PROVENANCE.training_settings(
            "pretrain", parse_base_folder(wc.base)
        ),
        save_dtype=config["model"]["save_dtype"],
        seed=config["seed"],
    script:
        "../scripts/pretrain.py"


# The target fine-tunes the base on forget + retain1, the retrain model on retain1 (MUSE's recipe): one pair per
# target seed (model.seeds), which sets the fine-tuning's data order.
rule finetune:
    input:
        base=lambda wc: f"results/models/{base_folder(parse_pair(wc.pair)[1])}",
        corpus=corpus_dir,
        tokenizer=tokenizer_dir,
    output:
        directory("results/models/{corpus}/{pair}/{role}"),
    log:
        "results/logs/finetune/{corpus}/{pair}/{role}.log",
    benchmark:
        "results/benchmarks/finetune/{corpus}/{pair}/{role}.tsv"
    priority: 10
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    resources:
        **job_resources("finetune"),
    params:
        training=lambda wc: PROVENANCE.training_settings(
            "finetune", parse_pair(wc.pair)[1]
        ),
        save_dtype=config["model"]["save_dtype"],
        seed=lambda wc: parse_pair(wc.pair)[0],
    script:
        "../scripts/finetune.py"
