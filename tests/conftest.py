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
