"""Local run directories: a lock held while a run uses one, and pruning all but the newest."""

from __future__ import annotations

import fcntl
import re
import shutil
from pathlib import Path
from typing import IO, Final

LOCK_FILE: Final = ".lock"
# run_pipeline names each run directory by its start time, so names sort oldest first.
RUN_DIR: Final = re.compile(r"\d{8}-\d{6}-\d{6}")
DEFAULT_KEEP: Final = 10
ENV_KEEP_RUNS: Final = "MODELYARD_KEEP_RUNS"


def hold(run_dir: Path) -> IO[bytes]:
    """Lock a run directory against pruning until the returned file is closed (or the process ends)."""
    lock = (run_dir / LOCK_FILE).open("ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def run_dirs(work_root: Path) -> list[Path]:
    """The run directories under work_root, oldest first."""
    if not work_root.is_dir():
        return []
    return sorted(p for p in work_root.iterdir() if p.is_dir() and RUN_DIR.fullmatch(p.name))


def prune(work_root: Path, keep: int) -> tuple[list[Path], int]:
    """Delete all but the newest `keep` run directories, sparing any a running run holds; the
    directories deleted and the bytes they held."""
    removed, freed = [], 0
    dirs = run_dirs(work_root)
    for run_dir in dirs[: max(len(dirs) - keep, 0)]:
        size = _size(run_dir)
        if _remove_unless_held(run_dir):
            removed.append(run_dir)
            freed += size
    return removed, freed


def _remove_unless_held(run_dir: Path) -> bool:
    with (run_dir / LOCK_FILE).open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(run_dir)  # while holding the lock, so no run takes the directory meanwhile
    return True


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
