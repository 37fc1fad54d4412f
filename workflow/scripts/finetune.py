from qunlearn.data.muse import load_corpus
from qunlearn.evaluate.evaluator import check_prompts_fit
from qunlearn.models.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.models.training import train_lm
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
corpus = load_corpus(snakemake.input.corpus)
tokenizer = load_tokenizer(snakemake.input.tokenizer)
check_prompts_fit(tokenizer, corpus, p.training["train_len"], snakemake.wildcards.corpus)
# The target sees forget and retain1; the retrain model, the gold standard of unlearning, retain1 only.
texts = corpus.raw["retain1"] + (corpus.raw["forget"] if snakemake.wildcards.role == "target" else [])
model = load_model(snakemake.input.base, "fp32")
history = train_lm(model, tokenizer, texts, seed=p.seed, **p.training)
save_model(model, snakemake.output[0], p.save_dtype, extra_json={"training.json": history})
