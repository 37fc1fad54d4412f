"""What every workflow script does first: log to the rule's log file, size torch's thread pool and register the
config's extensions."""

import importlib.util
import logging
import os
import sys
from importlib import metadata

import qunlearn
from qunlearn.registry import import_extensions

# The packages whose versions can change a result: recorded with every metrics file.
RESULT_PACKAGES = ("torch", "transformers", "llmcompressor", "compressed-tensors", "bitsandbytes", "tokenizers")


def start(snakemake) -> None:
    """Send logging, warnings, stdout and stderr to the rule's `log:` file, use the rule's `threads:`, and import the
    modules of the config's `extensions:` (their specs name what this job may run)."""
    handle = open(snakemake.log[0], "a", buffering=1)
    for stream in (sys.stdout, sys.stderr):  # at the descriptor level: libraries' own handlers land here too
        stream.flush()
        os.dup2(handle.fileno(), stream.fileno())
    logging.basicConfig(stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.captureWarnings(True)
    if "SLURM_JOB_ID" in os.environ:  # the GPUs Slurm gave this job step, as CUDA sees them
        logging.info("Slurm job %s, GPUs: %s", os.environ["SLURM_JOB_ID"], os.environ.get("CUDA_VISIBLE_DEVICES", "none"))
    if importlib.util.find_spec("torch"):  # the report's environment has no torch
        import torch

        torch.set_num_threads(snakemake.threads)
    import_extensions(snakemake.config.get("extensions", []))


def package_versions() -> dict[str, str]:
    """qunlearn's version and those of RESULT_PACKAGES installed in this job's environment (looked up by name: a
    scan of every installed distribution costs half a second per job)."""
    versions = {"qunlearn": qunlearn.__version__}
    for name in RESULT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run: rule -> number of jobs."""
    if "Job stats:" not in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split()[:2] for line in table if line.split()) if rule != "total"}
