from qunlearn.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.io import write_json
from qunlearn.muse import load_corpus
from qunlearn.unlearning import UnlearnSettings, unlearn
from qunlearn.workflow import start

start(snakemake)
settings = UnlearnSettings(**snakemake.params.settings, seed=snakemake.params.seed)
corpus = load_corpus(snakemake.input.corpus)
tokenizer = load_tokenizer(snakemake.input.tokenizer)
model = load_model(snakemake.input.target, settings.dtype)
record = unlearn(model, tokenizer, corpus.raw["forget"], corpus.raw["retain1"], settings)
save_model(model, snakemake.output.model)
write_json(snakemake.output.record, {"settings": vars(settings), **record})
