"""A byte-level BPE tokenizer for the embedded benchmark, saved as a Hugging Face tokenizer with BOS/EOS/PAD."""

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from qunlearn.io import atomic_dir

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path) -> None:
    bpe = Tokenizer(models.BPE())
    # Each whitespace character is a token of its own, so MUSE's KnowMem prompt, which ends in "Answer: ",
    # stops at a token boundary the model has seen in training (with GPT-2's " word" tokens it would not).
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\s"), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    # Encoding a text adds BOS in front, as Llama's tokenizer does.
    bpe.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bpe.token_to_id(BOS))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    with atomic_dir(out_dir) as staging:
        tokenizer.save_pretrained(staging)
