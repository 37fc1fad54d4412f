# Serving an unlearned LoRA adapter (docs/adapters.md). Merged into the target in bf16 or fp32, it is a checkpoint
# like any unlearned model's, which quantize, evaluate and mechanism take as they are; served unmerged, it is
# evaluated on the target in each format (the target's own quantized checkpoint) and has no checkpoint of its own.
rule merge_adapter:
    input:
        target=target_dir,
        adapter=adapter_dir,
        record=adapter_record,
    output:
        model=directory("results/unlearned/{corpus}/{pair}/{model}"),
        record="results/unlearned/{corpus}/{pair}/{model}.json",
    log:
        "results/logs/merge_adapter/{corpus}/{pair}/{model}.log",
    benchmark:
        "results/benchmarks/merge_adapter/{corpus}/{pair}/{model}.tsv"
    wildcard_constraints:
        model=MERGED_NAME_PATTERN,
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    resources:
        **job_resources("merge_adapter"),
    params:
        serving=lambda wc: PROVENANCE.serving_settings(wc.model)["serving"],
        dtype=lambda wc: PROVENANCE.serving_settings(wc.model)["dtype"],
    script:
        "../scripts/merge_adapter.py"


# A served adapter's metrics come from here, not from evaluate (whose pattern its names also match).
ruleorder: evaluate_served > evaluate


rule evaluate_served:
    input:
        corpus=corpus_dir,
        tokenizer=tokenizer_dir,
        target=served_target,
        adapter=adapter_dir,
    output:
        "results/metrics/{corpus}/{pair}/{model}/{format}.json",
    log:
        "results/logs/evaluate/{corpus}/{pair}/{model}/{format}.log",
    benchmark:
        "results/benchmarks/evaluate/{corpus}/{pair}/{model}/{format}.tsv"
    wildcard_constraints:
        model=SERVED_NAME_PATTERN,
        format=one_of(FORMAT_IDS),
    conda:
        "../../envs/evaluate.yaml"
    threads: config["threads"]
    resources:
        **job_resources("evaluate"),
    params:
        quantizer=lambda wc: quantizer_of(wc.format),
        adapter_quantization=lambda wc: PROVENANCE.serving_settings(wc.model)[
            "adapter_quantization"
        ],
        batch_size=config["evaluation"]["batch_size"],
        mink_k=config["evaluation"]["mink_k"],
    script:
        "../scripts/evaluate_served.py"
