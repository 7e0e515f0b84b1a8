"""Imported once by the local executor's forkserver, before any run is forked from it.

It loads torch, the trainer and every registered plug-in (regularizers, architectures,
datasets, evaluators, which pull in torchvision, POT and scikit-learn: seconds of imports),
so that each run's process starts as a fork that already has them in memory instead of
importing them again. The forkserver runs no torch operation, so no thread pool exists
yet when it forks.
"""

from harness.archs import ARCHS
from harness.datasets import DATASETS
from harness.evaluators import EVALUATORS
from harness.sweep import jobs  # noqa: F401  (the worker's entry point, and harness.train)
from harness.methods import REGULARIZERS

for registry in (REGULARIZERS, ARCHS, DATASETS, EVALUATORS):
    registry.names()  # imports every plug-in module of the registry's package
