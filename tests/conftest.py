import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.data.synthetic import write_corpus

REPO = Path(__file__).resolve().parents[1]


def snakemake_with(config: Path) -> list[str]:
    """The workflow's command line with a config file (which replaces config.yaml)."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(config)]


def pytest_collection_modifyitems(items):
    """A test that reads the ci run is end to end: without the e2e mark, `make test-fast` would start that run."""
    unmarked = [i.nodeid for i in items if "ci_run" in getattr(i, "fixturenames", ()) and not i.get_closest_marker("e2e")]
    if unmarked:
        raise pytest.UsageError(f"mark these tests @pytest.mark.e2e (they use the ci run): {', '.join(unmarked)}")


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory, worker_id):
    """One finished run of the ci preset, shared by every test that only reads it (tests that write copy it
    first): run once per test session, also when pytest-xdist spreads the tests over several workers."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    workdir, stdout = shared / "ci-run", shared / "ci-run.stdout"
    with FileLock(str(shared / "ci-run.lock")):
        if not stdout.exists():
            done = subprocess.run([*snakemake_with(REPO / "presets/ci.yaml"), "--cores", "2", "--directory", str(workdir)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-5000:]
            stdout.write_text(done.stdout)
    return workdir, stdout.read_text()


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
    from qunlearn.data.muse import load_corpus
    from qunlearn.data.tokenizer import train_tokenizer

    corpus = load_corpus(corpus_dir)
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(corpus.raw["forget"] + corpus.raw["retain1"], 300, out)
    return out


@pytest.fixture(scope="session")
def toy_tokenizer(toy_tokenizer_dir):
    from qunlearn.models.checkpoints import load_tokenizer

    return load_tokenizer(toy_tokenizer_dir)


@pytest.fixture(scope="session")
def llama_cpp():
    """llama-cpp-python (the gguf extra): GGUF tests skip without it, except where QUNLEARN_REQUIRE_GGUF=1 (CI)."""
    if os.environ.get("QUNLEARN_REQUIRE_GGUF") == "1":
        import llama_cpp

        return llama_cpp
    return pytest.importorskip("llama_cpp", reason="the gguf extra is not installed (make install-gguf)")
