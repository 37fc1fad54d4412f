from qunlearn.io import read_json
from qunlearn.models.checkpoints import load_tokenizer, save_model
from qunlearn.models.training import build_llama, train_lm
from qunlearn.workflow import start

start(snakemake)
p = snakemake.params
tokenizer = load_tokenizer(snakemake.input.tokenizer)
model = build_llama(len(tokenizer), tokenizer=tokenizer, seed=p.seed, **p.architecture)
history = train_lm(model, tokenizer, read_json(snakemake.input.corpus), seed=p.seed, **p.training)
save_model(model, snakemake.output[0], p.save_dtype, extra_json={"training.json": history})
