"""The config: its schema read with clear errors, the checks a schema cannot express, model and folder names,
and the provenance of every job and result. Torch-free: the Snakefile reads it at every start."""
