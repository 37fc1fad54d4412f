"""What every workflow script does first: log to the rule's log file and size torch's thread pool."""

import logging
import sys


def start(snakemake) -> None:
    """Send logging, warnings and stderr to the rule's `log:` file and use the rule's `threads:`."""
    import torch

    handle = open(snakemake.log[0], "a", buffering=1)
    sys.stderr = handle  # tqdm progress and library warnings land in the log too
    logging.basicConfig(stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.captureWarnings(True)
    torch.set_num_threads(snakemake.threads)
