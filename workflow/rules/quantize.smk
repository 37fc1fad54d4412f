# Quantizers that write a checkpoint (llmcompressor); bitsandbytes formats are applied at evaluation load.
rule quantize:
    input:
        model=model_dir,
    output:
        directory("results/quantized/{corpus}/{model}/{precision}"),
    log:
        "results/logs/quantize/{corpus}/{model}/{precision}.log",
    benchmark:
        "results/benchmarks/quantize/{corpus}/{model}/{precision}.tsv"
    conda:
        "../../envs/qunlearn.yaml"
    threads: config["threads"]
    params:
        quantizer=lambda wc: FORMATS[wc.precision]["quantizer"],
        bits=lambda wc: FORMATS[wc.precision]["bits"],
        group_size=config["quantization"]["group_size"],
        symmetric=config["quantization"]["symmetric"],
    script:
        "../scripts/quantize.py"
