"""What every benchmark here needs: sizes on the command line, /proc figures, the test servers.

Benchmarks run as scripts (`python bench/x.py`), so this folder is on sys.path and they import
it by name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def parse_size(text: str) -> int:
    """`1GiB`, `512MiB`, `256KiB`, `100MB`, `4096`: binary with i, decimal without."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 512MiB, 100MB, 4096)")
    unit = (m.group(2) or "").lower().rstrip("b")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
            "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}[unit]
    return int(float(m.group(1)) * mult)


def proc_status(pid: int, key: str) -> int:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> None:
    """Reset this process's VmHWM, so the next figure's peak is its own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (its threads included), and of its reaped children if asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = (11, 12, 13, 14) if children else (11, 12)
    return sum(int(fields[i]) for i in used) / os.sysconf("SC_CLK_TCK")


def storage_read_bytes(pid: int) -> int:
    """Bytes a process (its threads included) has had fetched from storage so far
    (/proc/PID/io read_bytes): what the page cache did not already hold. 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load_test_module(name: str) -> ModuleType:
    """A module of tests/ (not a package), loaded by path; tests/ goes on sys.path so that its
    own imports of sibling modules resolve."""
    key = f"_evidence_locker_tests_{name}"
    if key not in sys.modules:
        if str(ROOT / "tests") not in sys.path:
            sys.path.append(str(ROOT / "tests"))
        spec = importlib.util.spec_from_file_location(key, ROOT / "tests" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def load_services() -> ModuleType:
    """tests/services.py: PostgreSQL, SeaweedFS and Redis on loopback."""
    return load_test_module("services")
