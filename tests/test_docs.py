"""The repository is self-contained: its paper notes are docs/paper.md, nothing outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# spelt in pieces so that this file does not match itself
FORBIDDEN = re.compile("NOTES" + r"\.md|shared/" + "paper|moca-paper" + r"\.txt")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_points_at_paper_notes_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (figures, checkpoints)
        for n, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "cite docs/paper.md instead:\n" + "\n".join(offenders)


def test_paper_notes_have_the_sections_the_code_cites():
    text = (ROOT / "docs" / "paper.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+ (.+)$", text, flags=re.M))
    cited = set()
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".yaml"} or not path.is_file():
            continue
        for m in re.finditer(r'docs/paper\.md,? "([^"]+)"', path.read_text(encoding="utf-8")):
            cited.add(" ".join(m.group(1).split()))  # a citation may wrap
    assert cited, "expected some citations of docs/paper.md sections"
    missing = sorted(c for c in cited if c not in headings)
    assert not missing, f"docs/paper.md has no section named {missing}"


def test_the_readme_summary_agrees_with_the_report():
    """The README quotes the report's verdict counts; after `make reproduce` both change together."""
    report = (ROOT / "REPRODUCTION.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    summary = re.search(r"^Summary: (.+?)\.?$", report, flags=re.M)
    assert summary, "REPRODUCTION.md has no 'Summary:' line"
    assert f"**{summary.group(1)}**" in readme, f"README.md must quote the report's summary: {summary.group(1)}"


def test_the_readme_is_a_front_door():
    """What it is, install within the first 20 lines, the three first commands, at most ~150 lines."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; details belong in docs/"
    first_screen = "\n".join(lines[:20])
    for command in ('pip install -c constraints.txt -e ".[dev]"', "python -m pytest -q", "python -m harness.sweep sweeps/"):
        assert command in first_screen, f"the README's first screen lacks {command!r}"
    assert any(line.startswith("## Install") for line in lines[:25]), "Install must come right after the first screen"


def test_every_relative_link_in_the_docs_resolves():
    """README.md, REPRODUCTION.md and docs/*.md link files that exist (anchors are not checked)."""
    pages = [ROOT / "README.md", ROOT / "REPRODUCTION.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or "://" in path or path.startswith("mailto:"):
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_no_tracked_path_is_a_symlink_or_names_a_path_outside_the_repository():
    """A tracked symlink (mode 120000) is a broken link in every other clone: the repository once
    tracked ``data`` -> a developer's absolute path, so no clone could download MNIST (issue 19)."""
    out = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    links = [entry.split("\t", 1)[1] for entry in out.split("\0") if entry.startswith("120000 ")]
    assert not links, f"tracked symlinks (commit the file itself, or ignore it): {links}"
    absolute = re.compile(r"(?<![\w./-])/(?:home|Users|work|mnt|scratch)/[\w.-]+/")
    offenders = []
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".sh", ""} or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if absolute.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not offenders, "absolute paths of one machine (use a path relative to the repository):\n" + "\n".join(offenders)


DURATION = re.compile(r"\b(\d[\d.,]*\s*(s|seconds?|minutes?|min|hours?|GPU-hours?)|a few minutes|minutes per run)\b")


def test_sweep_files_state_time_per_run_as_measured_or_not_at_all():
    """A time in a sweep file's comments is a measurement (and says so), never a guess: the
    example study once promised "about 1 minute per run" for runs of 4 s (issue 19)."""
    guesses = []
    for path in sorted((ROOT / "sweeps").rglob("*.yaml")):
        comments = [line for line in path.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#")]
        timed = [line.strip() for line in comments if DURATION.search(line)]
        if timed and not any("measured" in line.lower() for line in comments):
            guesses.append(f"{path.relative_to(ROOT)}: {timed[0]}")
    assert not guesses, "say what was measured (and where), or drop the time:\n" + "\n".join(guesses)
