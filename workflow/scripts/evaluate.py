from dataclasses import asdict

from qunlearn.data.muse import load_corpus
from qunlearn.evaluate.evaluator import batch_size_for, evaluate
from qunlearn.io import write_json
from qunlearn.models.checkpoints import load_in_format, load_tokenizer
from qunlearn.workflow import package_versions, start

start(snakemake)
model = load_in_format(snakemake.input.model, snakemake.params.quantizer)
corpus = load_corpus(snakemake.input.corpus)
result = evaluate(model, load_tokenizer(snakemake.input.tokenizer), corpus,
                  batch_size_for(snakemake.params.batch_size, model.device), snakemake.params.mink_k)
# Which layout and split names the corpus had (a hub snapshot's revision shows in them).
write_json(snakemake.output[0], {**result, "corpus_layout": asdict(corpus.layout), "packages": package_versions()})
