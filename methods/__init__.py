"""Deprecated: the regularizers live in :mod:`harness.methods` (this alias goes in the next release).

``import methods`` and ``from methods.moca import MoCA`` still work: every module of
:mod:`harness.methods` is registered here under its old name (the same module objects, so the
registry and the classes are shared), with a :class:`DeprecationWarning`.
"""

import importlib
import pkgutil
import sys
import warnings

import harness.methods as _new
from harness.methods import REGULARIZERS, NoParams, Regularizer, RegularizerContext  # noqa: F401

warnings.warn("the package 'methods' is now 'harness.methods'; import that instead", DeprecationWarning, stacklevel=2)
for _info in pkgutil.iter_modules(_new.__path__):
    sys.modules[f"{__name__}.{_info.name}"] = globals()[_info.name] = importlib.import_module(
        f"harness.methods.{_info.name}")

__all__ = ["REGULARIZERS", "NoParams", "Regularizer", "RegularizerContext"]
