from qunlearn.attacks.transforms import load_dtype
from qunlearn.data.muse import load_corpus
from qunlearn.data.splits import ForgetSplit
from qunlearn.io import read_json
from qunlearn.models.checkpoints import load_model, load_tokenizer, save_model
from qunlearn.registry import ATTACKS, resolve
from qunlearn.workflow import start

start(snakemake)
i, settings = snakemake.input, snakemake.params.settings
model = load_model(i.model, load_dtype(settings))
attack = resolve(ATTACKS[settings["kind"]].impl)
record = attack(model, load_tokenizer(i.tokenizer), load_corpus(i.corpus), ForgetSplit.from_json(read_json(i.split)),
                settings, snakemake.params.seed)
save_model(model, snakemake.output[0], extra_json={"attack.json": {"settings": settings, **record}})
