import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.corpus import write_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "toy-news"
    write_corpus(out, "news", seed=0, documents=12, facts=3, questions=2)
    return out


@pytest.fixture
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def toy_tokenizer_dir(corpus_dir, tmp_path_factory):
    from qunlearn.muse import load_corpus
    from qunlearn.tokenizer import train_tokenizer

    corpus = load_corpus(corpus_dir)
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(corpus.raw["forget"] + corpus.raw["retain1"], 300, out)
    return out


@pytest.fixture(scope="session")
def toy_tokenizer(toy_tokenizer_dir):
    from qunlearn.checkpoints import load_tokenizer

    return load_tokenizer(toy_tokenizer_dir)


@pytest.fixture(scope="session")
def llama_cpp():
    """llama-cpp-python (the gguf extra): GGUF tests skip without it, except where QUNLEARN_REQUIRE_GGUF=1 (CI)."""
    if os.environ.get("QUNLEARN_REQUIRE_GGUF") == "1":
        import llama_cpp

        return llama_cpp
    return pytest.importorskip("llama_cpp", reason="the gguf extra is not installed (make install-gguf)")
