# Quantizers that write a checkpoint (llmcompressor); bitsandbytes formats are applied at evaluation load.
rule quantize:
    input:
        model=model_dir,
        tokenizer=model_tokenizer_dir,
        corpus=corpus_dir,
    output:
        quantized_output("results/quantized/{corpus}/{model}/{precision}"),
    log:
        "results/logs/quantize/{corpus}/{model}/{precision}.log",
    benchmark:
        "results/benchmarks/quantize/{corpus}/{model}/{precision}.tsv"
    conda:
        "../../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        **job_resources("quantize"),
    params:
        settings=lambda wc: quantize_settings(wc.precision),
        seed=config["seed"],
    script:
        "../scripts/quantize.py"
