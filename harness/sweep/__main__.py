"""Command line of the sweep engine (docs/sweeps.md).

    python -m harness.sweep SWEEP.yaml [--executor local|slurm|debug] [--workers N]
        [--gpus 0,1] [--workers-per-gpu N]
        [--set key=value ...] [--dry-run] [--status] [--no-wait] [--results DIR] [--retry-failed]
        [--status-every SECONDS] [--allow-large]

While it runs: one line per finished run on stderr (state, epochs, wall time, final headline
metrics), and off a terminal (a log file, a batch job) a summary line every
``--status-every`` seconds (counts and each running run's epoch); the progress bar only on a
terminal.

A sweep file with a ``search`` section runs in two stages from the same command: the trials,
then (in the same invocation once they are all done or diverged, or on a later rerun) the
runs of the selected settings (:mod:`harness.sweep.search`).

Exit status: 0 when every run is done or diverged (or, with ``--no-wait``, once submitted;
with ``--dry-run`` / ``--status``, always), 1 when some run is not or when the results folder
cannot be written (a file, read-only, a full disk: one line), 2 for a bad sweep file or
command line (one line on stderr; nothing written, nothing submitted), 4 when another
definition of the same sweep (other file or ``--set``) is running in its folder (one line,
:mod:`harness.sweep.owner`), 130 on Ctrl-C (one
line, at any point; every file is written atomically, so the same command resumes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from tqdm import tqdm

from harness.errors import CommandLine
from harness.config import ConfigError
from harness.run_folder import describe_os_error
from harness.sweep.engine import (
    all_final, check_folders, current_states, plan, prepare, print_reasons, print_table, summary,
)
from harness.sweep.executors import (
    EXECUTORS, DebugExecutor, Executor, Launch, LocalExecutor, SlurmExecutor, default_workers, gpu_slots,
)
from harness.sweep.identity import PathEscape, run_dir, sweep_dir
from harness.sweep.job_slots import JobSlots
from harness.sweep.preflight import PreflightError, preflight
from harness.sweep.owner import EXIT_BUSY, FolderBusy, own_folder
from harness.sweep.search import resolve_stages, stage_lines, write_record
from harness.sweep.spec import MAX_RUNS, SweepError, load_sweep
from harness.sweep.state import (
    FAILED, FINAL, LOG, METRICS, QUEUED, RUNNING, read_status, read_submitted, sweep_states,
)

HEADLINE = ["fid", "image_swd", "latent_swd", "test_recon", "recon", "loss"]  # shown per finished run


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 1")
    return value


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(g) for g in text.split(",")]
    except ValueError:
        gpus = []
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: distinct GPU indices such as 0,1")
    return gpus


def build_parser() -> argparse.ArgumentParser:
    p = CommandLine(prog="python -m harness.sweep", description="Run a sweep of training runs.")
    p.add_argument("sweep", help="sweep file (sweeps/<name>.yaml)")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="where runs execute (default: local)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="local executor: runs at once (default: one per two cores; on GPUs, "
                        "GPUs x workers per GPU)")
    p.add_argument("--gpus", type=_gpu_list, default=None,
                   help="local executor: GPUs to use, e.g. 0,1 (default: the sweep's local.gpus, else all visible)")
    p.add_argument("--workers-per-gpu", type=_positive, default=None,
                   help="local executor: runs sharing each GPU (default: the sweep's local.workers_per_gpu, 1)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the base config of every run, or slurm.KEY=VALUE (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their state; start nothing")
    p.add_argument("--status", action="store_true", help="print each run's state and a summary")
    p.add_argument("--no-wait", action="store_true", help="slurm: return once the arrays are submitted")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--retry-failed", action="store_true", help="also rerun failed runs (they resume)")
    p.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS",
                   help="off a terminal: a summary line every SECONDS (default 60; 0 = none)")
    p.add_argument("--job-slots", default=None, metavar="DIR",
                   help="local executor: a run also holds one of DIR's slot files while it trains, shared with "
                        "the other sweeps given DIR, and the progress bar is off (harness.reproduce runs "
                        "independent studies at once this way; harness/sweep/job_slots.py)")
    p.add_argument("--allow-large", action="store_true",
                   help=f"accept a sweep of more than {MAX_RUNS} runs (refused otherwise, before anything is expanded)")
    return p


def make_executor(args: argparse.Namespace, sweep, folder, states) -> tuple[Executor, dict[str, list[Launch]]]:
    """The executor, and (slurm) the runs of earlier submissions still queued, by job id."""
    if args.executor == "local":
        slots = local_gpu_slots(args, sweep)
        shared = JobSlots(args.job_slots) if args.job_slots else None
        return LocalExecutor(args.workers or len(slots) or default_workers(), slots=slots, job_slots=shared), {}
    if args.executor == "debug":
        return DebugExecutor(folder), {}
    submitted = read_submitted(folder)
    follow: dict[str, list[Launch]] = {}
    for r in sweep.runs:  # several runs share a job with slurm.runs_per_task > 1
        if states[r.id][0] in (QUEUED, RUNNING) and r.id in submitted:
            follow.setdefault(submitted[r.id], []).append(Launch(r, run_dir(folder, r.id)))
    return SlurmExecutor(sweep.slurm, sweep.name, folder, wait=not args.no_wait), follow


def finished_line(launch: Launch, state: str, note: str, n: int, total: int, executor: str) -> str:
    """``[3/12] lambda 1c25d241c178 method=moca,seed=1: done after 8 epochs, 41 s (image_swd=732)``, or
    ``[4/12] ... : failed: <reason> (after 2 epochs, 9 s) (log: ...)``."""
    status = read_status(launch.folder) or {}
    took = []
    if isinstance(status.get("epoch"), int):
        took.append(f"after {status['epoch']} epochs")
    if isinstance(status.get("wall_time_s"), (int, float)):
        took.append(f"{status['wall_time_s']:.0f} s")
    line = f"[{n}/{total}] {launch.folder.parent.name} {launch.run.id} {launch.run.name}: {state}"
    if state in FINAL:
        final = last_metrics(launch.folder)
        shown = [f"{k}={final[k]:.4g}" for k in HEADLINE if isinstance(final.get(k), (int, float))][:2]
        reason = f": {str(status['reason']).splitlines()[0]}" if state != "done" and status.get("reason") else ""
        return (line + reason + (f" {', '.join(took)}" if took else "")
                + (f" ({', '.join(shown)})" if shown else ""))
    reason = status.get("reason") if state == FAILED else None
    detail = "; ".join(str(x).splitlines()[0] for x in (reason, note) if x)
    log = f" (log: {launch.folder / LOG})" if executor == "local" else ""
    return line + (f": {detail}" if detail else "") + (f" ({', '.join(took)})" if took else "") + log


def last_metrics(folder) -> dict:
    """The last line of a run's metrics.jsonl ({} when unreadable)."""
    import json

    try:
        lines = (folder / METRICS).read_text().splitlines()
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


class StatusReporter:
    """Every ``every_s`` seconds, one summary line on stderr (counts, and each running run's
    epoch), from the run folders: a sweep in a log file or a batch job is never silent."""

    def __init__(self, sweep, folder, every_s: float):
        self.sweep, self.folder, self.every_s = sweep, folder, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sweep-status", daemon=True)

    def line(self) -> str:
        states = sweep_states(self.folder, [r.id for r in self.sweep.runs])
        running = [f"{rid} epoch {(st or {}).get('epoch', 0)}/{r.config.train.epochs}"
                   for r in self.sweep.runs for rid, (state, st) in [(r.id, states[r.id])] if state == RUNNING]
        stamp = time.strftime("%H:%M:%S")
        return f"[{stamp}] {summary(self.sweep, states)}" + (f"; running: {', '.join(running)}" if running else "")

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                tqdm.write(self.line(), file=sys.stderr)
            except OSError:
                pass

    def __enter__(self):
        if self.every_s > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()


def gpu_problem(gpus: list[int] | None, flag: str) -> str | None:
    """One line when GPUs are asked for that this machine does not have, else None."""
    if not gpus:
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return (f"{flag} {','.join(map(str, gpus))}: this machine has no usable CUDA device; "
                "leave it out to train on the CPU")
    missing = [g for g in gpus if g >= count]
    if missing:
        return f"{flag} {','.join(map(str, gpus))}: no GPU {missing[0]}; allowed: 0-{count - 1}"
    return None


def local_gpu_slots(args: argparse.Namespace, sweep) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each concurrent local run; [] on a machine without GPUs."""
    gpus = args.gpus if args.gpus is not None else sweep.local.gpus
    if gpus is None:
        import torch

        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return gpu_slots(gpus, args.workers_per_gpu or sweep.local.workers_per_gpu)


def execute(args: argparse.Namespace, executor: Executor, launches: list[Launch], follow: dict[str, list[Launch]]) -> int | None:
    """Run the launches: a line per finished run (on stderr, also off a terminal), a progress
    bar only on a terminal; an exit status when the sweep must stop here."""
    total = len(launches) + (0 if args.no_wait else sum(len(g) for g in follow.values()))
    finished = [0]
    # sweeps sharing job slots run at once on one terminal: their lines only, no bars
    with tqdm(total=total, desc="runs", unit="run", disable=True if args.job_slots else None, file=sys.stderr) as bar:

        def on_done(launch: Launch, state: str, note: str) -> None:
            bar.update(1)
            finished[0] += 1
            tqdm.write(finished_line(launch, state, note, finished[0], total, args.executor), file=sys.stderr)

        try:
            if launches or follow:
                executor.run(launches, on_done, follow)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume", file=sys.stderr)
            return 130
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            if args.executor != "slurm":
                raise
            print(f"slurm executor: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)  # sbatch/squeue
            return 1
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:  # while validating, preparing folders or collecting: nothing half-written
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as e:  # the results folder is a file, read-only, on a full disk, ...
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    try:
        sweep = load_sweep(args.sweep, args.sets, max_runs=None if args.allow_large else MAX_RUNS)
        folder = sweep_dir(args.results, sweep.name)
    except SweepError as e:
        print(e, file=sys.stderr)
        return 2
    except PathEscape as e:
        print(f"{args.sweep}: name: {e}", file=sys.stderr)
        return 2
    if args.job_slots:
        if args.executor != "local":
            print(f"--job-slots: only the local executor shares job slots; got --executor {args.executor}",
                  file=sys.stderr)
            return 2
        try:
            JobSlots(args.job_slots)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
    if args.executor in ("local", "debug") and not (args.dry_run or args.status):
        from harness.build import check_machine  # torch: only when runs will train here

        try:  # the runs train on this machine: what they need of it, before anything is written
            for run in sweep.runs:
                check_machine(run.config)
        except ConfigError as e:
            print(f"{args.sweep}: {e}", file=sys.stderr)
            return 2
        on_gpus = args.executor == "local" and any(run.config.train.device != "cpu" for run in sweep.runs)
        problem = on_gpus and gpu_problem(  # (device: cpu runs ignore their GPU slot)
            args.gpus if args.gpus is not None else sweep.local.gpus, "--gpus" if args.gpus is not None else "local.gpus")
        if problem:
            print(f"{args.sweep}: {problem}", file=sys.stderr)
            return 2

    selection, defined = None, sweep  # defined: the runs as first expanded (a search: before selection)
    states = current_states(sweep, folder)
    if sweep.search is not None:
        sweep, selection = resolve_stages(sweep, args.sets, folder, states)
        states = current_states(sweep, folder)
    to_start = plan(sweep, states, args.retry_failed)
    if args.dry_run or args.status:
        print_table(sweep, states)
        print_reasons(sweep, states)
        if selection is not None:
            print("\n".join(stage_lines(sweep, selection)))
        print(summary(sweep, states))
        if args.dry_run:
            print(f"would start {len(to_start)} of {len(sweep.runs)} runs with the {args.executor} executor")
        return 0

    try:  # a folder holding another config: refused before anything is written (the lock included)
        check_folders(sweep, folder)
    except SweepError as e:
        print(e, file=sys.stderr)
        return 2
    try:  # data and feature networks, once, here: before any folder or lock is written (a search's
        # tuned runs use the data and evaluation of its trials)
        preflight([run.config for run in to_start])
    except PreflightError as e:
        print(f"{args.sweep}: {e}", file=sys.stderr)
        return 2
    try:
        with own_folder(folder, defined, args.sets):
            return run_stages(args, sweep, folder, states, to_start, selection)
    except FolderBusy as e:
        print(e, file=sys.stderr)
        return EXIT_BUSY


def run_stages(args: argparse.Namespace, sweep, folder, states, to_start, selection) -> int:
    """Run the sweep (a search: its trials, then its tuned runs once the trials are final)
    and collect it; the exit status."""
    code = run_sweep(args, sweep, folder, states, to_start, selection)
    if code is not None or selection is None or selection.ready:
        return code if code is not None else finish(args, sweep, folder, selection)
    # a search whose trials were not all final: once they are, its tuned runs start (second pass)
    states = current_states(sweep, folder)
    sweep, selection = resolve_stages(sweep, args.sets, folder, states)
    if not selection.ready:
        return finish(args, sweep, folder, selection)
    states = current_states(sweep, folder)
    code = run_sweep(args, sweep, folder, states, plan(sweep, states, args.retry_failed), selection)
    return code if code is not None else finish(args, sweep, folder, selection)


def run_sweep(args: argparse.Namespace, sweep, folder, states, to_start, selection) -> int | None:
    """Write the manifest (and search.json), start ``to_start``; an exit status when the
    command must stop here (bad folders, Ctrl-C, slurm trouble, or ``--no-wait`` done)."""
    try:
        check_folders(sweep, folder)
    except SweepError as e:
        print(e, file=sys.stderr)
        return 2
    not_retried = sum(1 for s, _ in states.values() if s == FAILED) if not args.retry_failed else 0
    if not_retried:
        print(f"{not_retried} failed runs are not rerun (use --retry-failed)", file=sys.stderr)
    launches = prepare(sweep, folder, to_start, lazy=args.executor == "local")
    if selection is not None:
        write_record(sweep, selection, folder, args.sets)

    executor, follow = make_executor(args, sweep, folder, states)
    every = args.status_every if not sys.stderr.isatty() else 0  # on a terminal the progress bar says it
    with StatusReporter(sweep, folder, every):
        code = execute(args, executor, launches, follow)
    if code is not None:
        return code
    if args.executor == "slurm" and args.no_wait:
        again = " ".join([f"python -m harness.sweep {args.sweep}", *(f"--set {s}" for s in args.sets),
                          *([f"--results {args.results}"] if args.results != "results" else []), "--status"])
        print(f"submitted {len(launches)} runs of {sweep.name}; follow with: {again}"
              + ("; rerun the sweep once the trials are done to start the tuned runs"
                 if selection is not None and not selection.ready else ""))
        return 0
    return None


def finish(args: argparse.Namespace, sweep, folder, selection=None) -> int:
    """Collect runs.csv / curves.csv (and search.json), print the summary; the exit status."""
    from harness.collect import write_collection

    states = current_states(sweep, folder)
    if selection is not None:
        write_record(sweep, selection, folder, args.sets)
        print("\n".join(stage_lines(sweep, selection)))
    write_collection(folder)
    print(summary(sweep, states) + f" ({folder})")
    return 0 if all_final(states) and (selection is None or selection.ready) else 1


if __name__ == "__main__":
    sys.exit(main())
