#!/usr/bin/env bash
# Start / stop / inspect the local one-node SLURM cluster (root, no systemd).
#   tools/slurm_cluster.sh up | down [--purge] | status   [--state-dir DIR] [--max-array-size N]
# Environment: MOCA_SLURM_STATE_DIR (default /var/tmp/moca-slurm), MOCA_SLURM_MAX_ARRAY_SIZE
# (default 1001), MOCA_SLURM_TIMEOUT (seconds per daemon, default 60), PYTHON (default python).
# All the logic, and why, is in tools/slurm_cluster.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${repo}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python}" -m tools.slurm_cluster "$@"
