from qunlearn.data.muse import load_corpus
from qunlearn.quantize.llmcompressor import Calibration, quantize_and_save
from qunlearn.workflow import start

start(snakemake)
settings = dict(snakemake.params.settings)
calibration = settings.pop("calibration")
texts = load_corpus(snakemake.input.corpus).raw[calibration["split"]] if calibration else []
quantize_and_save(snakemake.input.model, snakemake.input.tokenizer, snakemake.output[0], **settings,
                  calibration_texts=texts,
                  calibration=Calibration(calibration["samples"], calibration["seq_len"]) if calibration else None,
                  seed=snakemake.params.seed)
