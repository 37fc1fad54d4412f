"""What every workflow script does first: log to the rule's log file and size torch's thread pool."""

import logging
import os
import sys
from importlib import metadata

import qunlearn

# The packages whose versions can change a result: recorded with every metrics file.
RESULT_PACKAGES = ("torch", "transformers", "llmcompressor", "compressed-tensors", "bitsandbytes", "tokenizers")


def start(snakemake) -> None:
    """Send logging, warnings, stdout and stderr to the rule's `log:` file and use the rule's `threads:`."""
    import torch

    handle = open(snakemake.log[0], "a", buffering=1)
    for stream in (sys.stdout, sys.stderr):  # at the descriptor level: libraries' own handlers land here too
        stream.flush()
        os.dup2(handle.fileno(), stream.fileno())
    logging.basicConfig(stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.captureWarnings(True)
    torch.set_num_threads(snakemake.threads)


def package_versions() -> dict[str, str]:
    return {"qunlearn": qunlearn.__version__, **{name: metadata.version(name) for name in RESULT_PACKAGES}}
