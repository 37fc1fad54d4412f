# Quantizers that write a checkpoint: llmcompressor's (compressed-tensors) and llama.cpp's (GGUF); bitsandbytes
# formats are applied at evaluation load.
rule quantize:
    input:
        unpack(quantize_input),
    output:
        quantized_output("results/quantized/{corpus}/{pair}/{model}/{format}"),
    log:
        "results/logs/quantize/{corpus}/{pair}/{model}/{format}.log",
    benchmark:
        "results/benchmarks/quantize/{corpus}/{pair}/{model}/{format}.tsv"
    wildcard_constraints:
        format=one_of(formats_written_by("quantize")),
    conda:
        "../../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        **job_resources("quantize"),
    params:
        settings=lambda wc: PROVENANCE.quantize_settings(wc.format),
        seed=config["seed"],
    script:
        "../scripts/quantize.py"


# GGUF needs llama.cpp (the `gguf` extra, its own environment): only configs that ask for a gguf-* format use it.
rule quantize_gguf:
    input:
        model=model_dir,
        tokenizer=model_tokenizer_dir,
    output:
        quantized_output("results/quantized/{corpus}/{pair}/{model}/{format}"),
    log:
        "results/logs/quantize/{corpus}/{pair}/{model}/{format}.log",
    benchmark:
        "results/benchmarks/quantize/{corpus}/{pair}/{model}/{format}.tsv"
    wildcard_constraints:
        format=one_of(formats_written_by("quantize_gguf")),
    conda:
        "../../envs/gguf.yaml"
    threads: config["threads"]
    resources:
        **job_resources("quantize"),
    params:
        quantizer=lambda wc: FORMATS[wc.format]["quantizer"],
    script:
        "../scripts/quantize_gguf.py"
