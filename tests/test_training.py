import torch

from qunlearn.data.muse import load_corpus
from qunlearn.data.tokenizer import train_tokenizer
from qunlearn.models.checkpoints import load_tokenizer
from qunlearn.models.training import build_llama, train_lm


def _train(corpus, tokenizer, seed):
    model = build_llama(len(tokenizer), 32, 1, 2, 64, 128, tokenizer, seed)
    history = train_lm(model, tokenizer, corpus.raw["forget"], epochs=2, batch_size=4, lr=1e-3, train_len=64,
                                 warmup_steps=2, seed=seed)
    return model.state_dict(), history


def test_same_seed_same_weights_other_seed_other_weights(corpus_dir, tmp_path):
    corpus = load_corpus(corpus_dir)
    train_tokenizer(corpus.raw["forget"] + corpus.raw["retain1"], 300, tmp_path / "tok")
    tokenizer = load_tokenizer(tmp_path / "tok")
    first, history = _train(corpus, tokenizer, seed=0)
    again, history_again = _train(corpus, tokenizer, seed=0)
    other, _ = _train(corpus, tokenizer, seed=1)
    assert history == history_again and history[-1]["loss"] < history[0]["loss"]
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["lm_head.weight"], other["lm_head.weight"])
