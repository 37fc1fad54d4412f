rule unlearn:
    input:
        unpack(checkpoint_rule_input),
        corpus=corpus_dir,
        tokenizer=tokenizer_dir,
        target=target_dir,
    output:
        model=directory("results/unlearned/{corpus}/{pair}/{unlearned}"),
        record="results/unlearned/{corpus}/{pair}/{unlearned}.json",
    log:
        "results/logs/unlearn/{corpus}/{pair}/{unlearned}.log",
    benchmark:
        "results/benchmarks/unlearn/{corpus}/{pair}/{unlearned}.tsv"
    wildcard_constraints:
        unlearned=TRAINED_NAME_PATTERN,
    # The longest jobs on the critical path: started first, so that quantization and evaluation fill the gaps.
    priority: 10
    conda:
        "../../envs/train.yaml"
    # A sharded job's processes share its threads, at least one each.
    threads: max(config["threads"], config["unlearning"]["shards"])
    resources:
        **job_resources("unlearn"),
    params:
        settings=lambda wc: PROVENANCE.unlearn_settings(wc.unlearned),
        sure=lambda wc: PROVENANCE.sure_settings(wc.unlearned),
        epoch_metrics=config["unlearning"]["epoch_metrics"],
        epoch_metrics_every=config["unlearning"]["epoch_metrics_every"],
        eval_batch_size=config["unlearning"]["epoch_metrics_batch_size"],
        checkpoint=config["unlearning"]["checkpoint"],
        shards=config["unlearning"]["shards"],
    script:
        "../scripts/unlearn.py"
