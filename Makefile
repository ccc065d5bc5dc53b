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

.PHONY: demo test test-fast test-pure crewai-env test-crewai lint typecheck check bench compiled clean wheel wheel-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# A failed build (no C compiler) is recorded in the stamp's place, so later runs do not retry it
# until a compiled module changes, and `redline --version` says why it runs pure Python.
$(COMPILED): $(STAMP) $(addprefix src/,$(COMPILED_SRC))
	rm -f src/redline/.compiled-*
	find src -name '*.so' -delete
	@echo "compiling the per-event path with mypyc ($(words $(COMPILED_SRC)) modules, about 2 minutes; once per change)"
	cd src && ../$(VENV)/bin/mypyc $(COMPILED_SRC) > ../$(VENV)/mypyc.log 2>&1 \
	  && touch ../$@ \
	  || { find . -name '*.so' -delete; cp ../$(VENV)/mypyc.log ../$@; cp ../$(VENV)/mypyc.log redline/.compiled-failed; \
	       echo "mypyc failed (see $(VENV)/mypyc.log): running pure Python, recorded; not retried until the source changes"; }
	rm -rf src/build

compiled: $(COMPILED)

demo: $(COMPILED)
	$(PY) examples/demo.py

test: $(COMPILED)
	$(PY) -m pytest -q

# The inner loop (under a minute): everything but the slow and end-to-end tests.
test-fast: $(COMPILED)
	$(PY) -m pytest -q -m "not slow and not e2e"

# The same suite on the pure-Python modules (what a source install without a compiler runs).
test-pure: $(STAMP)
	REDLINE_PURE_PYTHON=1 $(PY) -m pytest -q

# CrewAI pins an older openai and pydantic than the rest of the dev dependencies, so its
# integration tests run in a venv of their own (rebuilt when pyproject.toml changes).
CREWAI_VENV  := .venv-crewai
CREWAI_STAMP := $(CREWAI_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(CREWAI_STAMP): pyproject.toml
	test -x $(CREWAI_VENV)/bin/python || $(PYTHON) -m venv $(CREWAI_VENV)
	$(CREWAI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(CREWAI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  -e '.[crewai]' pytest pytest-timeout
	rm -f $(CREWAI_VENV)/.installed-*
	touch $(CREWAI_STAMP)

crewai-env: $(CREWAI_STAMP)

# Pure Python: the mypyc-compiled modules are .venv's build, checked against its sources.
test-crewai: $(CREWAI_STAMP)
	REDLINE_PURE_PYTHON=1 CREWAI_DISABLE_TELEMETRY=true OTEL_SDK_DISABLED=true \
	  $(CREWAI_VENV)/bin/python -m pytest -q tests/integrations/test_crewai.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(COMPILED)
	$(PY) bench/record.py

# What a pip user gets: the mypyc-compiled wheel and an sdist, in dist/.
wheel: $(STAMP)
	@echo "building the compiled wheel and an sdist in dist/ (mypyc: about 2 minutes)"
	rm -rf dist
	HATCH_BUILD_HOOK_ENABLE_MYPYC=true $(PY) -m build --outdir dist . > $(VENV)/wheel.log 2>&1 \
	  || { tail -30 $(VENV)/wheel.log; exit 1; }
	ls dist

# The wheel installed into a fresh venv: the quick start runs there, on the compiled modules.
wheel-check: wheel
	rm -rf build/wheel-venv build/quickstart
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install --quiet --disable-pip-version-check dist/*.whl
	mkdir -p build/quickstart/examples && cp examples/monitor.yaml build/quickstart/examples/
	cd build/quickstart && ../wheel-venv/bin/python ../../examples/quickstart.py
	cd build/quickstart && ../wheel-venv/bin/redline --version | tee version.txt && grep -q "compiled:" version.txt
	cd build/quickstart && ../wheel-venv/bin/python -c "import redline, redline.validation as v; \
	  assert not v.__file__.endswith('.py'), v.__file__; print('compiled modules in use:', v.__file__)"

clean:
	rm -rf $(VENV) $(CREWAI_VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/build src/.mypy_cache
	find src -name '*.so' -delete
	rm -f src/redline/.compiled-*
