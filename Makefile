# Local one-node SLURM cluster (see harness/slurm_cluster.py). Runs as root.
.PHONY: slurm-up slurm-down slurm-status

slurm-up:
	scripts/slurm_cluster.sh up

slurm-down:
	scripts/slurm_cluster.sh down

slurm-status:
	scripts/slurm_cluster.sh status
