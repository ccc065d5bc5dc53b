# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs
# what it needs; nothing installed by hand is relied on.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# The hot path compiled in place with mypyc (the modules listed in pyproject.toml's mypyc hook).
# Rebuilt whenever one of them changes; without a C compiler everything runs as pure Python.
COMPILED_SRC := $(shell sed -n '/hooks.mypyc\]/,/^\]/s/^ *"src\/\(redline\/[^"]*\.py\)",*$$/\1/p' pyproject.toml)
COMPILED     := src/redline/.compiled-$(shell cat $(addprefix src/,$(COMPILED_SRC)) pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-pure lint typecheck check bench compiled clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(COMPILED): $(STAMP) $(addprefix src/,$(COMPILED_SRC))
	rm -f src/redline/.compiled-*
	find src -name '*.so' -delete
	cd src && ../$(VENV)/bin/mypyc $(COMPILED_SRC) > ../$(VENV)/mypyc.log 2>&1 \
	  && touch ../$@ \
	  || { find . -name '*.so' -delete; echo "mypyc failed (see $(VENV)/mypyc.log): running pure Python"; }
	rm -rf src/build

compiled: $(COMPILED)

demo: $(COMPILED)
	$(PY) examples/demo.py

test: $(COMPILED)
	$(PY) -m pytest -q

# The same suite on the pure-Python modules (what a source install without a compiler runs).
test-pure: $(STAMP)
	REDLINE_PURE_PYTHON=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(COMPILED)
	$(PY) bench/record.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/build src/.mypy_cache
	find src -name '*.so' -delete
	rm -f src/redline/.compiled-*
