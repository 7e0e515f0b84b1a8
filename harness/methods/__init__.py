"""Latent regularizers, one file each, registered by name.

Every module in this package (not starting with ``_``) is imported on first use of
:data:`REGULARIZERS`, so adding a regularizer is adding one file with a class decorated by
``@REGULARIZERS.register("name")``; nothing else needs an edit.
"""

from harness.methods._base import REGULARIZERS, NoParams, Regularizer, RegularizerContext

__all__ = ["REGULARIZERS", "NoParams", "Regularizer", "RegularizerContext"]
