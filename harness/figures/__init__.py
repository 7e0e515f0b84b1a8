"""The paper's figures and tables, regenerated from sweep results (``make figures``).

    python -m harness.figures [--results results] [--only ID ...] [--list]

Each item (ids ``fig2_left`` ... ``table5``, :data:`harness.figures.registry.ITEMS`) names the
sweep(s) that feed it, a seaborn figure or pandas table function, and the paper's setting for
it. Items whose results exist under ``results/`` are drawn into ``results/figures/`` (png, pdf,
caption) and ``results/tables/`` (md, tex, csv); the others are listed with the command that
produces their results. Nothing is drawn from runs that are not done, and the paper's own
numbers appear only in a table column named ``paper``. See docs/figures.md.
"""

from __future__ import annotations

from harness.figures.registry import IDS, ITEMS

__all__ = ["IDS", "ITEMS"]
