# The paper's mechanism: how many of an unlearned model's quantized weights equal the target's, and how far
# unlearning moved the weights in units of the target's quantization step. One job per unlearned model
# (loading its weights once), one JSON per saved format.
rule mechanism:
    input:
        target=target_dir,
        model="results/unlearned/{corpus}/{unlearned}",
        target_quantized=expand(
            "results/quantized/{{corpus}}/target/{precision}",
            precision=SAVED_PRECISIONS,
        ),
        quantized=expand(
            "results/quantized/{{corpus}}/{{unlearned}}/{precision}",
            precision=SAVED_PRECISIONS,
        ),
    output:
        expand(
            "results/mechanism/{{corpus}}/{{unlearned}}/{precision}.json",
            precision=SAVED_PRECISIONS,
        ),
    log:
        "results/logs/mechanism/{corpus}/{unlearned}.log",
    benchmark:
        "results/benchmarks/mechanism/{corpus}/{unlearned}.tsv"
    conda:
        "../../envs/quantize.yaml"
    resources:
        **job_resources("mechanism"),
    params:
        quantizers=[FORMATS[p]["quantizer"] for p in SAVED_PRECISIONS],
    script:
        "../scripts/mechanism.py"
