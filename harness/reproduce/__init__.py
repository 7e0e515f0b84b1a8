"""``make reproduce``: every CPU-scale study of the paper, then REPRODUCTION.md.

    python -m harness.reproduce [--workers N] [--results DIR] [--only STUDY ...] [--report-only] [--sequential]

Runs each study sweep of :data:`STUDIES` with the local executor (it resumes like any sweep:
done runs are never retrained), up to ``--workers`` studies at once sharing ``--workers`` job
slots (:mod:`harness.reproduce.concurrent`), draws the figures (``python -m harness.figures``), and writes
``REPRODUCTION.md`` from the run folders (:mod:`harness.reproduce.report`): one row per claim
of the paper (:mod:`harness.reproduce.claims`), its numbers with 95 % confidence intervals
over seeds, and a verdict by the rule of :mod:`harness.reproduce.stats`.

Studies share configurations (the MoCA centre point appears in six of them; methods and moca_components share three cases). A run's id is
the hash of its config, so before a study starts, each of its runs that is already done in
another study's folder is copied into this study's folder (:func:`reuse_done_runs`; the
checkpoint is not copied) and is not trained again; a study that shares runs with an earlier
one therefore starts only after it.
"""

# the order the studies run in: by claims per minute of compute, so that a cut-short run loses the
# least; a study of the registry not named here runs after these (adding a figure needs no edit)
ORDER = [
    "synthetic_latent",  # Fig. 2 (left), the paper's own scale (about 2 minutes)
    "lambda",  # Figs. 3 and 8
    "convergence",  # Fig. 2 (right)
    "convergence_matched",  # Fig. 2 (right) diagnosis: λ on each method's own scale
    "momentum",  # Table 3
    "queue",  # Table 5
    "temperature",  # Fig. 10
    "methods",  # Tables 1-2
    "input_size",  # Fig. 9 / Table 4
    "latent_dim",  # Fig. 4
    "mnist_tsne",  # Fig. 7
    "moca_components",  # beyond the paper: MoCA taken apart (shares its MoCA, MMD and AE runs with methods)
]


def studies() -> list[str]:
    """The studies of ``make reproduce``, derived from the figure registry
    (:data:`harness.figures.registry.ITEMS`): every sweep an item names whose file is a
    CPU-scale study ``sweeps/<name>.yaml``, but searched sweeps (the benchmark runs on its own
    command), in :data:`ORDER`."""
    from pathlib import Path

    from harness.figures.registry import ITEMS
    from harness.yaml_io import load_file

    root = Path(__file__).resolve().parents[2]
    names = []
    for ref in (ref for item in ITEMS.values() for ref in item.sweeps):
        if ref.file == f"sweeps/{ref.name}.yaml" and ref.name not in names \
                and "search" not in (load_file(root / ref.file) or {}):
            names.append(ref.name)
    return [s for s in ORDER if s in names] + [s for s in names if s not in ORDER]


def __getattr__(name: str):
    if name == "STUDIES":  # derived on first use: the registry imports matplotlib
        global STUDIES
        STUDIES = studies()
        return STUDIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
