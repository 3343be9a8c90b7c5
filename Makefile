PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: run demo test test-all bench bench-gpu bench-nn bench-fracture lint clean

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m experiments run --suite quick --out results

demo: $(STAMP)
	$(PY) -m nmm.demo --out results/demo

# make test compiles with XLA's LLVM optimisation level 0: the fast tests are compile-bound (a
# quarter less wall time) and small; make test-all keeps XLA's defaults, what users run
test: $(STAMP)
	XLA_FLAGS="$${XLA_FLAGS:---xla_backend_optimization_level=0}" \
		$(PY) -m pytest -q -n 2 --dist worksteal --durations=15

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal -m ''

bench: $(STAMP)
	$(PY) benchmarks/poisson_vs_skfem.py
	$(PY) benchmarks/weak_form_engine.py
	$(PY) benchmarks/batch_solve.py
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/fixed_cost.py

bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu.py

bench-nn: $(STAMP)
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/nn_bridge_report.py

bench-fracture: $(STAMP)
	$(PY) benchmarks/fracture.py
	$(PY) benchmarks/enrichment.py

lint: $(STAMP)
	$(PY) -m ruff check nmm nmm_nn experiments tests benchmarks

clean:
	rm -rf .venv results .pytest_cache
