"""The forkserver preload as it was before 2026-12-06 (bench/run_start.py's baseline): torch,
the trainer and every registered plug-in, but not the libraries the plug-ins import inside
their functions (harness.sweep._preload.RUN_TIME_IMPORTS)."""

from harness.archs import ARCHS
from harness.datasets import DATASETS
from harness.evaluators import EVALUATORS
from harness.sweep import jobs  # noqa: F401
from harness.methods import REGULARIZERS

for registry in (REGULARIZERS, ARCHS, DATASETS, EVALUATORS):
    registry.names()
