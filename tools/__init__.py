"""Infrastructure around the harness, not part of the research code: the local one-node
SLURM cluster that CI and the SLURM tests use (:mod:`tools.slurm_cluster`)."""
