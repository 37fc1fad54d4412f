from qunlearn.muse import load_corpus
from qunlearn.tokenizer import train_tokenizer
from qunlearn.workflow import start

start(snakemake)
corpus = load_corpus(snakemake.input.corpus)
# All four raw splits: the tokenizer treats forget and holdout text alike, so PrivLeak measures the model only.
texts = [text for split in corpus.raw.values() for text in split]
train_tokenizer(texts, snakemake.params.vocab_size, snakemake.output[0])
