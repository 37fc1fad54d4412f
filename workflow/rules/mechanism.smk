# The paper's mechanism: how many of an unlearned model's quantized weights equal the target's, and how far
# unlearning moved the weights in units of the target's quantization step.
rule mechanism:
    input:
        target=target_dir,
        model="results/unlearned/{corpus}/{unlearned}",
        target_quantized="results/quantized/{corpus}/target/{precision}",
        quantized="results/quantized/{corpus}/{unlearned}/{precision}",
    output:
        "results/mechanism/{corpus}/{unlearned}/{precision}.json",
    log:
        "results/logs/mechanism/{corpus}/{unlearned}/{precision}.log",
    benchmark:
        "results/benchmarks/mechanism/{corpus}/{unlearned}/{precision}.tsv"
    group:
        "mechanism"
    conda:
        "../../envs/quantize.yaml"
    resources:
        **job_resources("mechanism"),
    params:
        quantizer=lambda wc: FORMATS[wc.precision]["quantizer"],
    script:
        "../scripts/mechanism.py"
