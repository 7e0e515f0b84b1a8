# Local one-node SLURM cluster (see harness/slurm_cluster.py). Runs as root.
.PHONY: slurm-up slurm-down slurm-status

slurm-up:
	scripts/slurm_cluster.sh up

slurm-down:
	scripts/slurm_cluster.sh down

slurm-status:
	scripts/slurm_cluster.sh status

# Everyday targets.
.PHONY: install test test-slurm test-all bench figures quickstart

install:
	pip install -c constraints.txt -e ".[dev]"

test:
	python -m pytest -q

test-slurm: slurm-up
	python -m pytest -q -m slurm

test-all: test test-slurm
	python -m pytest -q -m slow

bench:
	python bench/step_time.py
	python bench/metrics_time.py

quickstart:
	python -m harness.sweep sweeps/synthetic_latent.yaml

figures:
	python -m harness.figures
