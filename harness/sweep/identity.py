"""Run identity: stable ids, readable names, and folders that cannot escape the results root.

* The **id** of a run (:func:`harness.config.run_id`, re-exported here) is the content hash of
  its resolved config (:func:`harness.config.tree_fingerprint`), after resetting the fields that only say *how*
  a run executes, not *what* it computes (:data:`harness.config.EXECUTION_ONLY`: threads, progress bar, TensorBoard, data location). The same
  run in two sweeps, or the same sweep run twice, therefore gets the same id, and a run folder
  can be recognised from its ``config.json`` alone.
* The **name** is built from the values the sweep varies (``method=moca,tau=0.1,seed=0``,
  :mod:`harness.naming`); it
  is for people (tables, legends), never a path.
* The **folder** of a run is ``<results root>/<sweep name>/<run id>``. Sweep names come from
  YAML and ids from a manifest on disk, so both are checked against strict patterns and every
  path is resolved and checked to lie inside the results root before it is used
  (:func:`harness.run_folder.sweep_dir` / :func:`~harness.run_folder.run_dir`).
"""

from __future__ import annotations

from harness.config import run_id  # noqa: F401  (re-exported: the one definition of a run's id)
from harness.naming import format_value, run_name, short_labels  # noqa: F401  (re-exported)
from harness.run_folder import (  # noqa: F401  (the results layout lives with the run folder)
    RUN_ID_RE, SWEEP_NAME_ALLOWED, SWEEP_NAME_RE, PathEscape, inside, run_dir, sweep_dir, valid_sweep_name,
)

