"""Stage 4, quantization: one module per backend of registry.BACKENDS (llmcompressor, bitsandbytes, GGUF), and the
RTN oracle the tests hold llmcompressor to."""
