# Local one-node SLURM cluster (see tools/slurm_cluster.py). Runs as root.
.PHONY: slurm-up slurm-down slurm-status

slurm-up:
	tools/slurm_cluster.sh up

slurm-down:
	tools/slurm_cluster.sh down

slurm-status:
	tools/slurm_cluster.sh status

# Everyday targets.
.PHONY: install test test-slurm test-all bench figures quickstart reproduce

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

# Every CPU-scale study of the paper (sweeps/<study>.yaml, 3 seeds, then seeds added where a comparison is
# undecided, up to 10 seeds), then the figures and REPRODUCTION.md. From empty on 2 cores: 136 minutes on
# 2026-12-05, about 180 on the slower machine of 2026-12-06 before its preload fix, 159 on an Intel Xeon
# model 207 after it (bench/README.md); budget 160. Resumes: on finished results it trains nothing.
reproduce:
	python -m harness.reproduce --workers 2 --sequential
