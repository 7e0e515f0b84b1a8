"""The forkserver's preload (harness/sweep/_preload.py): every library a plug-in imports at a
run's first use is imported once there, and the preload leaves the process safe to fork."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from harness.sweep._preload import RUN_TIME_IMPORTS

HARNESS = Path(__file__).resolve().parent.parent / "harness"
# what a training run executes: the plug-in packages and the trainer around them
RUN_CODE = [*(HARNESS / p for p in ("archs", "datasets", "evaluators", "methods", "metrics")),
            HARNESS / "trainer.py", HARNESS / "build.py", HARNESS / "train.py", HARNESS / "priors.py"]


def function_level_imports(path: Path) -> set[str]:
    """Third-party modules imported inside a function of ``path`` (not harness, torch, stdlib)."""
    found = set()
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            found |= {n for n in names if n.split(".")[0] not in (*sys.stdlib_module_names, "harness", "torch")}
    return found


def covered(module: str) -> bool:
    """Importing ``a.b`` imports ``a`` too."""
    return any(entry == module or entry.startswith(module + ".") for entry in RUN_TIME_IMPORTS)


def test_every_run_time_import_of_the_run_code_is_preloaded():
    files = [f for p in RUN_CODE for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    seen = {m: f for f in files for m in function_level_imports(f)}
    assert "ot" in seen and "torchvision.datasets" in seen  # the scan finds what it should
    missing = {m: str(f.relative_to(HARNESS.parent)) for m, f in seen.items() if not covered(m)}
    assert not missing, f"add to RUN_TIME_IMPORTS in harness/sweep/_preload.py: {missing}"


def test_the_scan_sees_a_function_level_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nimport numpy\ndef g():\n    import json\n    from ot.lp import emd\n"
                 "    from . import x\n    import harness.train\n")
    assert function_level_imports(f) == {"ot.lp"}
    assert covered("ot.lp") is False and covered("ot") and covered("torchvision")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_the_preload_starts_no_thread_but_the_blas_pools_and_leaves_cuda_untouched():
    """A fork copies only the calling thread: a torch thread pool started before it would be
    lost in the child; CUDA initialised before a fork cannot be used in the child. numpy's and
    scipy's OpenBLAS start their pools at import and stop them before a fork (pthread_atfork)."""
    def threads(imports: str, extra: str = "") -> list[str]:
        code = (f"import os, threading, torch, {imports}; print(len(os.listdir('/proc/self/task')), "
                f"threading.active_count(), torch.cuda.is_initialized(){extra})")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split()
    blas = threads("numpy, scipy.linalg")
    preload = threads("harness.sweep._preload as p",
                      ", all(m in __import__('sys').modules for m in p.RUN_TIME_IMPORTS)")
    assert preload == [blas[0], "1", "False", "True"]
