"""The local runner's fan-out: candidates in real forked worker processes, progress lines,
cancellation of queued candidates and stopping of running ones (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import BaseModel

from modelyard.contract import TrainOutputs
from modelyard.contract.config import for_task, load_config
from modelyard.contract.records import CandidateResult, dump
from modelyard.core.errors import BadInputError, ModelyardError, TransientError
from modelyard.core.signals import Interrupted, deferred_signals, stop_signals_raise
from modelyard.runner.local import STOP_GRACE, FanOut

CONFIG = for_task(load_config("", {"dataset": "iris"}), "classification").model_dump_json()


def fake_train(step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
    """A stand-in train step, run in the worker: records its pid, then does what its args say."""
    name = args["name"]
    if args.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Written whole, then renamed: a test that sees the file reads the pid, never an empty file.
    written = work_dir / f".{name}.pid.partial"
    written.write_text(str(os.getpid()))
    written.replace(work_dir / f"{name}.pid")
    for other in args.get("after", []):  # an order, not a delay: on a busy machine a worker starts late
        wait_for_pid(work_dir, other)
    time.sleep(args.get("seconds", 0))
    match args.get("fail"):
        case "bad":
            raise BadInputError(f"{name} has bad input")
        case "connection":
            raise requests.ConnectionError(f"{name}: connection refused")
        case "die":
            os.kill(os.getpid(), signal.SIGKILL)
        case "stopped":  # as the Docker runner reports a step container stopped from outside
            raise Interrupted(signal.SIGTERM)
    result = CandidateResult(name=name, run_id="0" * 32, score=args["score"], gap=0.0, overfit=False)
    return TrainOutputs(result=dump(result))


def wait_for_pid(work_dir: Path, name: str) -> None:
    """Until candidate `name` is running in its worker (it has written its pid)."""
    deadline = time.monotonic() + 60
    while not (work_dir / f"{name}.pid").exists():
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.01)


def calls(*specs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(spec["name"], {"config": CONFIG, "score": 0.5} | spec) for spec in specs]


def fan_out(work_dir: Path) -> tuple[FanOut, list[str]]:
    lines: list[str] = []
    return FanOut("train", fake_train, work_dir, lines.append), lines


def alive(work_dir: Path, name: str) -> bool:
    pid = int((work_dir / f"{name}.pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is dead


def test_progress_lines_per_candidate_and_results_in_candidate_order(tmp_path: Path) -> None:
    runner, lines = fan_out(tmp_path)
    results = runner.run(
        calls(
            {"name": "slow", "seconds": 1.5, "score": 0.81}, {"name": "fast", "score": 0.7}, {"name": "last"}
        ),
        workers=2,
    )
    assert [CandidateResult.model_validate_json(r.result).name for r in results] == ["slow", "fast", "last"]
    assert lines[:2] == ["train: started 1/3 slow", "train: started 2/3 fast"]
    # A candidate keeps its number from start to finish; the count of finished ones is said apart.
    assert lines[2].startswith("train: finished 2/3 fast in ")
    assert lines[2].endswith(" s, val f1_macro=0.7 (1 of 3 done)")
    assert lines[3] == "train: started 3/3 last"
    finished = [line for line in lines if " finished " in line]
    numbers = {line.split()[3]: line.split()[2] for line in finished}
    assert numbers == {"fast": "2/3", "slow": "1/3", "last": "3/3"}
    assert [line.rsplit("(", 1)[1] for line in finished] == ["1 of 3 done)", "2 of 3 done)", "3 of 3 done)"]
    assert any(
        line.startswith("train: finished 1/3 slow in 1.") and "f1_macro=0.81" in line for line in finished
    )


def test_one_worker_still_runs_each_candidate_in_its_own_process(tmp_path: Path) -> None:
    runner, _ = fan_out(tmp_path)
    runner.run(calls({"name": "a"}, {"name": "b"}), workers=1)
    pids = {(tmp_path / f"{n}.pid").read_text() for n in ("a", "b")}
    assert len(pids) == 2 and str(os.getpid()) not in pids


def test_a_failed_candidate_stops_the_running_ones_and_cancels_the_queued(tmp_path: Path) -> None:
    runner, lines = fan_out(tmp_path)
    started = time.monotonic()
    with pytest.raises(BadInputError, match="bad has bad input"):
        runner.run(
            calls(
                {"name": "slow", "seconds": 60},
                {"name": "bad", "after": ["slow"], "fail": "bad"},
                {"name": "queued"},
            ),
            workers=2,
        )
    assert time.monotonic() - started < 10
    assert not alive(tmp_path, "slow")
    assert not (tmp_path / "queued.pid").exists()  # never started
    assert "train: cancelled 1 queued" in lines
    assert "train: stopped 1 slow" in lines


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    runner, _ = fan_out(tmp_path)
    started = time.monotonic()
    with pytest.raises(BadInputError):
        runner.run(
            calls(
                {"name": "stubborn", "seconds": 60, "ignore_sigterm": True},
                {"name": "bad", "after": ["stubborn"], "fail": "bad"},
            ),
            workers=2,
        )
    assert STOP_GRACE <= time.monotonic() - started < STOP_GRACE + 8
    assert not alive(tmp_path, "stubborn")


def test_a_worker_that_dies_is_an_error_naming_the_candidate(tmp_path: Path) -> None:
    runner, _ = fan_out(tmp_path)
    with pytest.raises(ModelyardError, match=r"train dead: its worker process died \(exit code -9\)"):
        runner.run(calls({"name": "dead", "fail": "die"}), workers=1)


def test_a_connection_failure_in_a_worker_reaches_the_parent_as_transient(tmp_path: Path) -> None:
    runner, _ = fan_out(tmp_path)
    with pytest.raises(TransientError, match="connection refused"):
        runner.run(calls({"name": "offline", "fail": "connection"}), workers=1)


def test_a_stop_signal_cancels_queued_and_stops_running_candidates(tmp_path: Path) -> None:
    """A real SIGTERM to this process while it waits for its workers, as `docker stop` sends it."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop_signals_raise()
    sent: list[float] = []

    def stop_once_both_run() -> None:
        for name in ("a", "b"):
            wait_for_pid(tmp_path, name)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    runner, lines = fan_out(tmp_path)
    try:
        threading.Thread(target=stop_once_both_run, daemon=True).start()
        with pytest.raises(Interrupted) as stopped:
            runner.run(
                calls({"name": "a", "seconds": 60}, {"name": "b", "seconds": 60}, {"name": "c"}), workers=2
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stopped.value.exit_code == 143
    assert time.monotonic() - sent[0] < STOP_GRACE + 3
    assert not alive(tmp_path, "a") and not alive(tmp_path, "b")
    assert not (tmp_path / "c.pid").exists()
    assert lines[-3:] == ["train: cancelled 1 queued", "train: stopped 1 a", "train: stopped 2 b"]


def test_a_stop_signal_that_arrives_while_a_worker_is_forked_is_not_lost(tmp_path: Path) -> None:
    """Sent from the parent's after-fork hook, where logging's hook runs too: a handler that raised
    there would only be printed (CI lost a stop that way), so the fork holds the signal."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop_signals_raise()
    armed = [True]

    def stop_once_forked() -> None:
        if armed:
            armed.clear()
            os.kill(os.getpid(), signal.SIGTERM)

    os.register_at_fork(after_in_parent=stop_once_forked)  # for good: `armed` makes it fire once
    runner, lines = fan_out(tmp_path)
    try:
        with pytest.raises(Interrupted) as stopped:
            runner.run(calls({"name": "a", "seconds": 30}, {"name": "b"}), workers=1)
    finally:
        armed.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stopped.value.exit_code == 143
    assert lines == ["train: cancelled 1 queued", "train: stopped 1 a"]
    assert not (tmp_path / "a.pid").exists() or not alive(tmp_path, "a")
    assert not (tmp_path / "b.pid").exists()


def test_a_step_stopped_from_outside_stops_the_fan_out_as_a_signal_would(tmp_path: Path) -> None:
    runner, _ = fan_out(tmp_path)
    with pytest.raises(Interrupted) as stopped:
        runner.run(
            calls(
                {"name": "other", "seconds": 60}, {"name": "killed", "after": ["other"], "fail": "stopped"}
            ),
            workers=2,
        )
    assert stopped.value.exit_code == 143
    assert not alive(tmp_path, "other")


def test_a_stop_signal_in_a_critical_section_waits_for_its_end(tmp_path: Path) -> None:
    """As in register between creating a version and setting its aliases: a real SIGTERM is held."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop_signals_raise()
    steps: list[str] = []
    try:
        with pytest.raises(Interrupted) as stopped:
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # a handler would have run by now
                steps.append("version and aliases")
            steps.append("after the section")
        assert getattr(signal.getsignal(signal.SIGTERM), "__name__", "") == "_raise_interrupted"  # restored
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert steps == ["version and aliases"]
    assert stopped.value.exit_code == 143


def threads_seen(step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
    """A stand-in train step that records the thread counts of the loaded BLAS and OpenMP pools."""
    from threadpoolctl import threadpool_info

    counts = sorted({pool["num_threads"] for pool in threadpool_info()})
    (work_dir / f"{args['name']}.threads").write_text(" ".join(map(str, counts)))
    result = CandidateResult(name=args["name"], run_id="0" * 32, score=0.5, gap=0.0, overfit=False)
    return TrainOutputs(result=dump(result))


@pytest.mark.parametrize("workers", [1, 2])
def test_candidates_running_at_once_share_the_cpus_instead_of_each_taking_all(
    tmp_path: Path, workers: int
) -> None:
    import sklearn.ensemble  # noqa: F401  (loads OpenMP, as a train step does)

    FanOut("train", threads_seen, tmp_path, lambda line: None).run(
        calls({"name": "a"}, {"name": "b"}), workers
    )
    share = max(1, (os.cpu_count() or 1) // workers)
    assert {(tmp_path / f"{n}.threads").read_text() for n in ("a", "b")} == {str(share)}
