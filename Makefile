# The whole set-up is `make test` or `make demo` on a fresh Debian 12 machine (as root).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-service setup-ha test lint demo bench soak clean

setup:
	@bash scripts/setup.sh

# A production host: only what `genrecast run` and `genrecast dashboard` need (no torch, test tools, chromium).
setup-service:
	@bash scripts/setup.sh --service

lint: setup
	$(VENV)/bin/ruff check .

# The Home Assistant the tests run against, in its own venv under .cache/ha/ (installed once).
setup-ha:
	@bash scripts/setup_ha.sh >/dev/null

test: setup setup-ha
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

demo: setup
	@bash scripts/demo.sh

bench: setup
	$(PY) benchmarks/dsp_bench.py
	$(PY) benchmarks/daemon_bench.py
	$(PY) benchmarks/scale_bench.py
	$(PY) benchmarks/stop_bench.py
	$(PY) benchmarks/upload_bench.py

# An hour of 8 real-time streams in one process: memory, threads and descriptors flat, nothing dropped.
soak: setup
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
