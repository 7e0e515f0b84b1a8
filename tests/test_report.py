"""``python -m harness.report``: the HTML page, checked as text and rendered in headless Chromium
(Debian's ``chromium``, installed by .ci/run): the rendered DOM has the runs table (sorted by
the page's own JavaScript) and a screenshot of the page is not blank and shows the table.

The sweep is TEST DATA from test_figures.fabricate (a failed and a diverged run included)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from test_figures import fabricate, fid_of

from harness.evaluators.artifacts import labelled_grid
from harness.report import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADER_RGB = (0xDD, 0xE6, 0xF0)  # table.runs th background in harness/report.py


@pytest.fixture
def sweep(tmp_path):
    """paper_temperature (8 runs): run 2 failed with a reason, run 5 diverged; run 0 has grids."""
    ids = fabricate(tmp_path, "paper_temperature", states={2: "failed", 5: "diverged"})
    folder = tmp_path / "paper_temperature"
    for i, reason in ((2, "RuntimeError: CUDA out of memory\nsecond line"), (5, "non-finite loss at step 7")):
        status = json.loads((folder / ids[i] / "status.json").read_text())
        (folder / ids[i] / "status.json").write_text(json.dumps({**status, "reason": reason}))
    (folder / ids[2] / "error.txt").write_text("Traceback ...\n")
    import torch

    grid = labelled_grid(torch.rand(16, 1, 28, 28), 8, "test reconstructions · moca · epoch 2",
                         ["input", "reconstruction"])
    grid.save(folder / ids[0] / "reconstructions.png")
    return folder, ids


def test_page_has_counts_table_figures_grids_and_reasons(sweep):
    folder, ids = sweep
    assert main([str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "6 done" in page and "1 failed" in page and "1 diverged" in page
    assert page.count("<tr id=\"run-") == 8
    assert "CUDA out of memory" in page and "second line" not in page and "error.txt" in page
    assert "non-finite loss at step 7" in page
    default = folder / "plots" / "curves-fid-by-method_tau.png"  # harness.plot's default name
    assert default.is_file() and "Traceback ..." in page  # error.txt inlined
    assert "<script>" in page and "sortTable" in page
    # one self-contained file: every image is embedded, the default figure once
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert sources.count(data_uri(default)) == 1
    assert data_uri(folder / ids[0] / "reconstructions.png") in sources


def data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def test_moved_page_keeps_its_images_and_a_default_plot_drawn_before_is_shown_once(sweep, tmp_path):
    from harness.plot import main as plot_main

    folder, ids = sweep
    assert plot_main([str(folder)]) == 0  # the user's default plot, then the report
    assert plot_main([str(folder), "--col", "method.weight"]) == 0  # another plot, another file
    assert main([str(folder)]) == 0
    moved = tmp_path / "elsewhere" / "page.html"
    moved.parent.mkdir()
    shutil.move(folder / "report.html", moved)
    shutil.rmtree(folder)  # nothing the page needs is left
    sources = re.findall(r'<img src="([^"]*)"', moved.read_text())
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert len(sources) == 3  # default figure, the --col plot, one grid: each once


def test_link_images_links_them_relative_to_the_page(sweep):
    folder, ids = sweep
    assert main([str(folder), "--link-images"]) == 0
    page = (folder / "report.html").read_text()
    assert 'src="plots/curves-fid-by-method_tau.png"' in page and f'src="{ids[0]}/reconstructions.png"' in page
    assert 'href="' + ids[2] + '/error.txt"' in page


def test_not_a_sweep_is_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "no such sweep folder" in capsys.readouterr().err


def _chromium(*args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed (.ci/run installs it)")
def test_page_renders_in_headless_chromium(sweep, tmp_path):
    folder, ids = sweep
    assert main([str(folder)]) == 0
    url = (folder / "report.html").resolve().as_uri()

    # the DOM after the page's JavaScript ran, sorted by fid descending through the address
    dom = _chromium("--dump-dom", url + "#sort=-fid").stdout
    rows = re.findall(r'<tr id="run-([0-9a-f]{12})">', dom)
    assert sorted(rows) == sorted(ids)
    header = re.search(r"<thead>(.*?)</thead>", dom, re.S).group(1)
    assert 'class="sorted-desc"' in header and re.search(r'data-col="fid"[^>]*class="sorted-desc"|class="sorted-desc"[^>]*data-col="fid"', header)
    # fabricate: fid = 60 + 5·point + seed, so the highest fid is the last grid point's seed 1
    # among the done runs (failed and diverged runs logged fid too: their metrics are shown)
    fid_by_id = {rid: fid_of(i // 2, i % 2) for i, rid in enumerate(ids)}
    assert rows == sorted(ids, key=lambda r: -fid_by_id[r])

    # a screenshot of the rendered page: not blank, and the table header band is drawn
    shot = tmp_path / "shot.png"
    result = _chromium("--window-size=1280,1600", f"--screenshot={shot}", url)
    assert shot.is_file(), result.stderr[-2000:]
    a = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert a.shape[:2] == (1600, 1280)
    non_white = (a < 240).any(axis=2)
    assert non_white.mean() > 0.02  # text, table, figure: not a blank page
    header_px = (np.abs(a - np.array(HEADER_RGB)).sum(axis=2) <= 6)
    rows_with_header = np.flatnonzero(header_px.sum(axis=1) > 400)  # a band wider than 400 px
    assert len(rows_with_header) >= 15  # the table header, about 25 px high
    band = slice(rows_with_header.min(), rows_with_header.max() + 1)
    assert (~header_px[band] & (a[band] < 100).all(axis=2)).any()  # dark header text on the band
