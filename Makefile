# The project's own virtual environment; every target below uses it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs bench bench-quality clean-demo venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	# torch/torchvision pinned to the builds this machine caches; the range in pyproject admits others.
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[test,ray,docs]"
	touch $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh

test: $(STAMP)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo "PostgreSQL is not installed (apt-get install postgresql): the store, search, import, classify and web tests run on SQLite only; their PostgreSQL runs skip."
	$(PY) -m pytest -q

# pyflakes and syntax errors ([tool.ruff] in pyproject.toml); it reformats nothing
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The site from docs/ into site/; strict: a broken link or a page missing from the nav fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m benchmarks.run

# k-fold over the shared Met sample: macro-F1, hand-checked accuracy, ECE, "none of these" rates
bench-quality: $(STAMP)
	$(PY) -m benchmarks.quality

clean-demo:
	rm -rf demo-project
