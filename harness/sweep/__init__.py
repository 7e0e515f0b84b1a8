"""The sweep engine: ``python -m harness.sweep sweeps/<name>.yaml`` (docs/sweeps.md).

A sweep file names a base run config and the axes to vary; the engine expands the grid,
validates every run before anything starts, gives each run a stable id (the hash of its
resolved config) and a folder ``results/<sweep>/<run id>/``, starts the runs that are not
done with an executor (local processes, SLURM arrays through submitit, or in-process for
debugging), and finally collects ``runs.csv`` / ``curves.csv`` (:mod:`harness.collect`).

Modules: :mod:`~harness.sweep.grid` (the sweep algebra, pure), :mod:`~harness.sweep.spec`
(sweep files, mapped onto it), :mod:`~harness.sweep.resources` (the slurm / local blocks),
:mod:`~harness.sweep.space` (search sections, pure) and :mod:`~harness.sweep.search` (the
selection, from run folders), :mod:`~harness.sweep.identity` (ids, names, safe paths),
:mod:`~harness.sweep.state` (run states on disk), :mod:`~harness.sweep.engine` (planning,
manifest), :mod:`~harness.sweep.owner` (one definition per sweep folder),
:mod:`~harness.sweep.executors`, :mod:`~harness.sweep.jobs` (the job that trains one run folder).
"""

from harness.sweep.spec import RunSpec, SlurmConfig, Sweep, SweepError, load_sweep

__all__ = ["RunSpec", "SlurmConfig", "Sweep", "SweepError", "load_sweep"]
