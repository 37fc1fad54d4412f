# The paper's mechanism: how many of an unlearned model's RTN-quantized weights equal the target's.
rule mechanism:
    input:
        target=target_dir,
        model="results/unlearned/{corpus}/{unlearned}",
    output:
        "results/mechanism/{corpus}/{unlearned}/{precision}.json",
    log:
        "results/logs/mechanism/{corpus}/{unlearned}/{precision}.log",
    benchmark:
        "results/benchmarks/mechanism/{corpus}/{unlearned}/{precision}.tsv"
    conda:
        "../../envs/qunlearn.yaml"
    params:
        bits=lambda wc: FORMATS[wc.precision]["bits"],
        group_size=config["quantization"]["group_size"],
        symmetric=config["quantization"]["symmetric"],
    script:
        "../scripts/mechanism.py"
