from dataclasses import asdict

from qunlearn.checkpoints import load_model, load_tokenizer
from qunlearn.evaluation import batch_size_for, evaluate
from qunlearn.gguf_format import load_gguf
from qunlearn.io import write_json
from qunlearn.muse import load_corpus
from qunlearn.quantization import load_bitsandbytes, load_dequantized
from qunlearn.workflow import package_versions, start

start(snakemake)
loader = snakemake.params.loader
if loader == "full":
    model = load_model(snakemake.input.model, "fp32")
elif loader == "dequantize":
    model = load_dequantized(snakemake.input.model)
elif loader == "gguf":
    model = load_gguf(snakemake.input.model)
else:
    model = load_bitsandbytes(snakemake.input.model, loader)
corpus = load_corpus(snakemake.input.corpus)
result = evaluate(model, load_tokenizer(snakemake.input.tokenizer), corpus,
                  batch_size_for(snakemake.params.batch_size, model.device), snakemake.params.mink_k)
# Which layout and split names the corpus had (a hub snapshot's revision shows in them).
write_json(snakemake.output[0], {**result, "corpus_layout": asdict(corpus.layout), "packages": package_versions()})
