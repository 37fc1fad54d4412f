# The paper's mechanism: how many of an unlearned model's quantized weights equal the target's, how far
# unlearning moved the weights in units of the target's quantization step, and how much of the update survives.
# One job per unlearned model (loading its weights once), one JSON per format: saved formats from their
# checkpoints, bitsandbytes formats quantized here as they are on load.
rule mechanism:
    input:
        target=target_dir,
        model=unlearned_dir,
        target_quantized=expand(
            "results/quantized/{{corpus}}/{{pair}}/target/{format}",
            format=SAVED_FORMATS,
        ),
        quantized=expand(
            "results/quantized/{{corpus}}/{{pair}}/{{unlearned}}/{format}",
            format=SAVED_FORMATS,
        ),
    output:
        expand(
            "results/mechanism/{{corpus}}/{{pair}}/{{unlearned}}/{format}.json",
            format=QUANTIZED_FORMATS,
        ),
    log:
        "results/logs/mechanism/{corpus}/{pair}/{unlearned}.log",
    benchmark:
        "results/benchmarks/mechanism/{corpus}/{pair}/{unlearned}.tsv"
    conda:
        "../../envs/quantize.yaml"
    resources:
        **job_resources("mechanism"),
    params:
        lr=lambda wc: unlearning_lr(model_of(wc, "unlearned")),
        formats=[
            {"quantizer": FORMATS[p]["quantizer"], "saved": p in SAVED_FORMATS}
            for p in QUANTIZED_FORMATS
        ],
    script:
        "../scripts/mechanism.py"
