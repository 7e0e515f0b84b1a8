"""bench/gpu.py runs end to end in --smoke mode on the CPU (its numbers mean nothing there)
and ends with one JSON line holding every number and ratio it printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


def run_bench(*args: str) -> tuple[list[str], dict]:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", *args],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_smoke_steps_and_fid_print_ratios_and_json():
    lines, result = run_bench("--no-compile", "--skip", "packing")
    assert result["smoke"] is True and "SMOKE MODE" in lines[0]
    for p in ("fp32", "bf16"):
        assert result[f"moca_{p}_ms_per_step"] > 0 and result[f"none_{p}_ms_per_step"] > 0
        assert result[f"moca_over_none_{p}"] == pytest.approx(
            result[f"moca_{p}_ms_per_step"] / result[f"none_{p}_ms_per_step"], rel=0.01)
    assert result["bf16_over_fp32"] > 0 and result["best_epoch_s"] > 0 and result["fid_images_per_s"] > 0
    assert isinstance(result["goal_epoch_le_5s"], bool)
    assert any(line.startswith("ratios: ") for line in lines)


@pytest.mark.slow
def test_full_smoke_with_compile_and_packing():
    _, result = run_bench()
    assert result["compiled_over_eager_bf16"] > 0 and result["moca_over_none_bf16_compiled"] > 0
    assert result["runs_per_hour_pack1"] > 0 and result["packing_speedup"] > 0
