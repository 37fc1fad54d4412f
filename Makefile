# The README's two commands: `make run` and `make test` (lint, then the test suite). Both build .venv from
# nothing when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= $(shell nproc)
STAMP  := $(VENV)/.installed
GGUF   := $(VENV)/.installed-gguf

.PHONY: install install-gguf run test test-fast lint clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and alone, pinned: an unpinned resolve would pull a CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The GGUF formats' quantizer: llama.cpp, built from source by pip (about 8 min on 2 cores); not in `install`.
$(GGUF): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$(CORES) $(PY) -m pip install -q -c constraints.txt -e '.[test,gguf]'
	touch $(GGUF)

install-gguf: $(GGUF)

run: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES)

test: $(STAMP) lint
	$(VENV)/bin/pytest -q -n auto --durations=15

# The edit-test loop: every test but those that run the workflow end to end (marked e2e): about 2 minutes.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -n auto -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results .snakemake
