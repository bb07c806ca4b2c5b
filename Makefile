# One venv for everything; `make test` and `make demo` create or reuse it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled core (setup.py, docs/compiled-core.md): built in place from these sources,
# again for the ones edited since (`make native`); skipped without a C compiler or with
# ARSCORE_PURE_PYTHON=1.
NATIVE := $(VENV)/.native
CORE_SRC := $(wildcard models/*.py schemas/*.py)

.PHONY: install native test test-pure unit integration lint demo bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,baseline]'
	touch $(STAMP)

$(NATIVE): $(STAMP) $(CORE_SRC)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $(NATIVE)

install: $(NATIVE)

native: $(NATIVE)

test: $(NATIVE)
	$(BIN)/python -m pytest

# the core's tests on the interpreted source, compiled modules installed or not
test-pure: $(NATIVE)
	ARSCORE_PURE_PYTHON=1 $(BIN)/python -m pytest tests/unit/models tests/unit/schemas tests/golden tests/unit/test_build.py

unit: $(NATIVE)
	$(BIN)/python -m pytest tests/unit

integration: $(NATIVE)
	$(BIN)/python -m pytest tests/integration

lint: $(NATIVE)
	$(BIN)/ruff check .
	$(BIN)/mypy models schemas

demo: $(NATIVE)
	$(BIN)/arscore demo

bench: $(NATIVE)
	$(BIN)/python bench/core_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	rm -f models/*.so schemas/*.so models/*.html schemas/*.html
