# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Another Python: `make test PYTHON=python3.13` (its own venv, .venv/py3.13).
PYTHON ?= python3
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PY_VERSION),)
$(error PYTHON=$(PYTHON) does not run; set PYTHON to a Python 3.10-3.13 interpreter)
endif
VENV ?= .venv/py$(PY_VERSION)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# What `make test` installs: the suite checks the export converters and the
# search index too. Users pick theirs (README: "Which extras").
EXTRAS ?= test,export,search
DEMO_DIR ?= runs/demo
# The demo's training seed (weights and pairs; the generated data is fixed):
# `make demo SEED=3`. README gives the accuracy's range over seeds.
SEED ?= 0
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-fast-avx2 test-fast-no-onednn install clean

# Re-installs when setup.py changes; the editable install picks up code edits.
# pip installs the newest release inside each declared range.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments.demo --workdir=$(DEMO_DIR) --seed=$(SEED)

# AVE-Net beside the demo (a second training run, so not inside `make demo`):
# prints sound-to-image recall@1 on the test split beside random weights.
.PHONY: demo-search
demo-search: $(STAMP)
	$(BIN)/python -m experiments.demo_search --workdir=$(DEMO_DIR)

# Two pytest-xdist workers, one test file at a time each (`--dist loadfile`,
# so module fixtures are built once): most tests wait on one core (TF start-up,
# tracing, subprocesses), so two share 2 cores well. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The suite without the multi-process and end-to-end tests (CI's second stack).
FAST_SUITE = $(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)
test-fast: $(STAMP)
	$(FAST_SUITE)

# The fast suite on other CPUs' numeric paths (issue 22; CI runs both):
# oneDNN capped at AVX2 kernels (what an AVX2-only CPU such as an AMD EPYC
# of cpu family 23 runs; the same as `test-fast` on one), and without oneDNN
# (TensorFlow's own Eigen kernels). On an AVX-512 CPU the cap also stops
# oneDNN's bfloat16 kernels, which an AVX2-only CPU runs on Eigen instead:
# the tests of bfloat16 kernels skip there, saying so
# (`cpu_features.bf16_blocked_by_isa_cap`).
test-fast-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 $(FAST_SUITE)

test-fast-no-onednn: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(FAST_SUITE)

clean:
	rm -rf .venv runs .pytest_cache build *.egg-info
