"""Imported once by the local executor's forkserver, before any run is forked from it.

It loads torch, the trainer and every registered plug-in (regularizers, architectures,
datasets, evaluators), and then the libraries those plug-ins import only when a run uses them
(:data:`RUN_TIME_IMPORTS`: torchvision, POT, power-spherical, ...; kept out of module level so
that the command line starts fast, issue 18), so that each run's process starts as a fork
that already has them in memory instead of importing them again: about 4 s of a run's start
on this 2-core machine (torchvision 2.2 s, POT 1.9 s, measured 2026-12-06; bench/README.md).
The forkserver runs no torch operation, so no torch thread pool exists yet when it forks, and
none of these imports initialises CUDA; the only threads are the BLAS pools of numpy and
scipy, which OpenBLAS stops before a fork (pthread_atfork) and restarts on first use
(tests/test_sweep_preload.py checks these, and that every function-level import of a
third-party library in the code a run executes is listed here).
"""

from importlib import import_module

from harness.archs import ARCHS
from harness.datasets import DATASETS
from harness.evaluators import EVALUATORS
from harness.sweep import jobs  # noqa: F401  (the worker's entry point, and harness.train)
from harness.methods import REGULARIZERS

# what the plug-ins import inside their functions, at a run's first use
RUN_TIME_IMPORTS = (
    "matplotlib.backends.backend_agg",
    "matplotlib.figure",
    "ot",
    "power_spherical",
    "pytorch_fid.inception",
    "scipy.special",
    "sklearn.datasets",
    "sklearn.manifold",
    "torchvision.datasets",
    "torchvision.datasets.utils",
    "torchvision.models.resnet",
    "torchvision.transforms.v2.functional",
    "torchvision.utils",
)

for registry in (REGULARIZERS, ARCHS, DATASETS, EVALUATORS):
    registry.names()  # imports every plug-in module of the registry's package
for name in RUN_TIME_IMPORTS:
    import_module(name)
