"""Job slots shared by sweeps that run at once (harness/sweep/job_slots.py), the local executor
waiting for one, and the studies-at-once scheduler of make reproduce (harness/reproduce/concurrent.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from harness.reproduce import concurrent
from harness.sweep.__main__ import main as sweep_main
from harness.sweep.job_slots import JobSlots, create_job_slots
from harness.sweep.state import read_status
from tests.test_sweep_local import make_sweep


def test_slots_are_held_one_holder_each_and_freed_by_release_or_death(tmp_path):
    folder = create_job_slots(tmp_path / "slots", 2)
    slots = JobSlots(folder)
    a, b = slots.acquire(), slots.acquire()
    assert a is not None and b is not None and slots.acquire() is None  # both held, even within one process
    slots.release(a)
    c = slots.acquire()
    assert c is not None and slots.acquire() is None
    slots.release(b), slots.release(c)
    # a process that holds a slot and dies frees it: the lock belongs to the open file
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from harness.sweep.job_slots import JobSlots; "
                               f"s = JobSlots({str(folder)!r}); s.acquire(); s.acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert slots.acquire() is None
    holder.kill(), holder.wait()
    assert slots.acquire() is not None
    create_job_slots(folder, 1)  # remade with fewer: the extra file goes
    assert len(JobSlots(folder)) == 1
    with pytest.raises(ValueError, match="no slot files"):
        JobSlots(tmp_path / "empty")
    with pytest.raises(ValueError, match="allowed: an integer >= 1"):
        create_job_slots(tmp_path / "none", 0)


def test_a_local_run_waits_for_a_job_slot_another_sweep_holds(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree, epochs=1, seeds=(0,)), tmp_path / "results"
    folder = create_job_slots(tmp_path / "slots", 1)
    other = JobSlots(folder)
    held = other.acquire()  # "another sweep" trains a run in the only slot
    codes = []
    thread = threading.Thread(target=lambda: codes.append(sweep_main(
        [str(path), "--results", str(results), "--workers", "2", "--job-slots", str(folder)])))
    thread.start()
    time.sleep(3)
    runs = [p for p in (results / "e2e").iterdir() if p.is_dir()] if (results / "e2e").is_dir() else []
    assert all(read_status(p) is None for p in runs)  # nothing started while the slot is held
    other.release(held)
    thread.join(120)
    assert codes == [0]
    run = next(p for p in (results / "e2e").iterdir() if p.is_dir())
    assert read_status(run)["state"] == "done"
    assert "[1/1] e2e " in capsys.readouterr().err  # the finished line names its sweep


def test_job_slots_errors_are_one_line_before_anything_starts(tmp_path, tiny_tree, capsys):
    path = make_sweep(tmp_path, tiny_tree, epochs=1, seeds=(0,))
    assert sweep_main([str(path), "--results", str(tmp_path / "r"), "--job-slots", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith(f"--job-slots {tmp_path / 'nowhere'}: no slot files")
    create_job_slots(tmp_path / "s", 1)
    assert sweep_main([str(path), "--results", str(tmp_path / "r"), "--executor", "debug",
                       "--job-slots", str(tmp_path / "s")]) == 2
    assert "only the local executor" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_studies_run_at_once_up_to_workers_and_after_the_studies_they_share_runs_with(tmp_path, monkeypatch):
    """The scheduler with stand-in sweeps that log their start and end: at most 2 at once, the
    order kept, and c (which shares runs with a) not before a has ended."""
    log = tmp_path / "log.jsonl"
    script = ("import json, sys, time; name = sys.argv[1]; log = open(sys.argv[2], 'a'); "
              "log.write(json.dumps([name, 'start', time.time()]) + '\\n'); log.flush(); "
              "time.sleep(float(sys.argv[3])); log.write(json.dumps([name, 'end', time.time()]) + '\\n')")
    seconds = {"a": 1.5, "b": 0.2, "c": 0.2, "d": 0.2}
    monkeypatch.setattr(concurrent, "sweep_command",
                        lambda file, results, workers, slots: [sys.executable, "-c", script, str(file), str(log),
                                                               str(seconds[str(file)])])
    after = concurrent.shares_runs_with(list("abcd"), {"a": {"1", "2"}, "b": {"3"}, "c": {"2", "4"}, "d": {"5"}})
    assert after == {"a": set(), "b": set(), "c": {"a"}, "d": set()}
    started = []
    ended = [name for name, code, _, _ in concurrent.run_at_once(
        list("abcd"), lambda n: n, tmp_path, 2, after, before_start=started.append)]
    assert sorted(ended) == list("abcd") and started == ["a", "b", "d", "c"]  # d goes ahead of the waiting c
    events = [json.loads(line) for line in log.read_text().splitlines()]
    at = {(n, what): t for n, what, t in events}
    assert at[("c", "start")] >= at[("a", "end")]
    running, most = 0, 0
    for _, what, _ in sorted(events, key=lambda e: e[2]):
        running += 1 if what == "start" else -1
        most = max(most, running)
    assert most == 2
