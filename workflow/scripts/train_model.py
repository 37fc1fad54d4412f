from qunlearn.checkpoints import load_tokenizer, save_model
from qunlearn.io import write_json
from qunlearn.muse import load_corpus
from qunlearn.training import build_llama, train_from_scratch
from qunlearn.workflow import start

start(snakemake)
spec = snakemake.params.model
corpus = load_corpus(snakemake.input.corpus)
tokenizer = load_tokenizer(snakemake.input.tokenizer)
# The target sees forget and retain1; the retrain model, the gold standard of unlearning, retain1 only.
texts = corpus.raw["retain1"] + (corpus.raw["forget"] if snakemake.wildcards.role == "target" else [])
model = build_llama(len(tokenizer), spec["hidden"], spec["layers"], spec["heads"], spec["intermediate"], spec["max_position"], tokenizer,
                    snakemake.params.seed)
history = train_from_scratch(model, tokenizer, texts, spec["epochs"], spec["batch_size"], spec["lr"], spec["train_len"],
                             spec["warmup_steps"], snakemake.params.seed)
save_model(model, snakemake.output[0], spec["save_dtype"])
write_json(f"{snakemake.output[0]}/training.json", history)
