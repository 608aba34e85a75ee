"""Run the training DAG on this machine: steps in-process, fanned-out candidates in processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from modelyard.contract import STEPS, FinishParams, StepName
from modelyard.contract.config import PipelineConfig
from modelyard.contract.dag import (
    EXIT_HANDLER,
    TRAINING,
    AllOutputs,
    Item,
    PipelineInput,
    Source,
    Task,
    TaskOutput,
)
from modelyard.contract.records import CandidateResult, RunStatus
from modelyard.core.errors import ModelyardError
from modelyard.core.signals import Interrupted, deferred_signals
from modelyard.core.transient import as_transient
from modelyard.runner.retention import hold

# Runs one step; the local runner calls steps in-process, the Docker runner in containers. An
# executor may also have a `stop()` that stops what it started elsewhere (the Docker runner's containers).
StepExecutor = Callable[[str, dict[str, Any], Path], BaseModel]
Echo = Callable[[str], None]
STOP_GRACE: Final = 2.0  # seconds a stopped candidate worker gets between SIGTERM and SIGKILL


@dataclass
class PipelineRun:
    work_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        prepared = self.outputs.get(StepName.PREPARE)
        return prepared.run_id if prepared else ""


def run_in_process(step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
    spec = STEPS[step]
    return spec.run(spec.params(**args), work_dir)


@contextmanager
def forking_parent() -> Iterator[None]:
    """OpenMP on one thread in a process that forks candidate workers. GNU OpenMP (scikit-learn's)
    hangs in a child forked after its parent ran a parallel region on more than one thread: the
    monitor's prediction with a histogram boosting champion froze the retraining's first binning.
    Each worker sets its own share of the cores (_work)."""
    import sklearn.ensemble  # noqa: F401  loads scikit-learn's OpenMP, so the limit reaches it

    with threadpool_limits(1, user_api="openmp"):
        yield


def run_pipeline(
    inputs: dict[str, Any],
    work_root: Path,
    *,
    execute: StepExecutor = run_in_process,
    parallel: int | None = None,
    echo: Echo = lambda line: print(line, file=sys.stderr, flush=True),
) -> PipelineRun:
    """Execute TRAINING task by task; the exit handler closes the parent run whatever happens:
    KILLED, with the runs left open under it, when a stop signal (Interrupted) ended the run."""
    work_dir = work_root / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    work_dir.mkdir(parents=True)
    lock = hold(work_dir)  # `modelyard gc` and --keep-runs spare the directory while it is held
    run = PipelineRun(work_dir)
    status: RunStatus = "Succeeded"
    message = ""
    try:
        with forking_parent():
            for number, task in enumerate(TRAINING, 1):
                echo(f"[{number}/{len(TRAINING)}] {task.name}: {task.step.help}")
                if task.when and not _resolve(task.when, inputs, run, None):
                    echo(f"      {task.name} skipped: {task.when.task} gave no {task.when.output}")
                    continue
                started = time.perf_counter()
                run.outputs[task.name] = _run_task(task, inputs, run, execute, parallel, echo)
                _keep_outputs(task.name, run)
                run.timings[task.name] = time.perf_counter() - started
                echo(f"      {task.name} done in {run.timings[task.name]:.1f}s")
    except Interrupted as exc:
        status, message = "Stopped", f"{task.name} {exc}"
        echo(f"      {task.name} STOPPED ({exc})")
        raise
    except BaseException as exc:
        status, message = "Failed", f"{type(exc).__name__}: {exc}"
        echo(f"      {task.name} FAILED")
        raise
    finally:
        if run.run_id:
            finish = FinishParams(run_id=run.run_id, status=status, message=message)
            with deferred_signals():  # a second Ctrl-C must not leave the parent run open
                execute(EXIT_HANDLER.name, finish.model_dump(), work_dir)
        lock.close()
    return run


def _keep_outputs(task: str, run: PipelineRun) -> None:
    """Each task's outputs as JSON beside the artifacts, so any step can be replayed by hand."""
    outputs = run.outputs[task]
    dumped = [o.model_dump() for o in outputs] if isinstance(outputs, list) else outputs.model_dump()
    (run.work_dir / "tasks").mkdir(exist_ok=True)
    (run.work_dir / "tasks" / f"{task}.json").write_text(json.dumps(dumped, indent=1))


def _run_task(
    task: Task,
    inputs: dict[str, Any],
    run: PipelineRun,
    execute: StepExecutor,
    parallel: int | None,
    echo: Echo = lambda line: None,
) -> Any:
    if task.fan_out is None:
        return execute(task.step.name, _resolve_all(task, inputs, run, None), run.work_dir)
    items = json.loads(_resolve(task.fan_out, inputs, run, None))
    calls = [(_item_name(item, n), _resolve_all(task, inputs, run, item)) for n, item in enumerate(items, 1)]
    workers = max(1, min(len(calls), parallel or os.cpu_count() or 1))
    return FanOut(task.step.name, execute, run.work_dir, echo).run(calls, workers)


def _item_name(item: Any, number: int) -> str:
    return str(item.get("name", number)) if isinstance(item, dict) else str(number)


@dataclass
class Worker:
    """One instance of a fanned-out step in its own forked process, its outcome sent through a pipe."""

    number: int
    name: str
    process: BaseProcess
    outcome: Connection
    started: float = field(default_factory=time.perf_counter)


@dataclass
class FanOut:
    """Instances of one step, at most `workers` at a time, each in a forked process so that a stop
    signal can cancel the queued ones and end the running ones at once (a thread cannot be stopped).
    Fork: workers start with everything imported. They inherit no database connection: the
    embedded store pools none (tracking.configure sets MLflow's NullPool)."""

    step: str
    execute: StepExecutor
    work_dir: Path
    echo: Echo

    def run(self, calls: list[tuple[str, dict[str, Any]]], workers: int) -> list[BaseModel]:
        queued = deque(enumerate(calls, 1))
        running: list[Worker] = []
        results: dict[int, BaseModel] = {}
        try:
            while queued or running:
                while queued and len(running) < workers:
                    number, (name, args) = queued.popleft()
                    # A stop arriving in the fork (its after-fork hooks run Python: logging's) would raise
                    # where the exception is only printed: it comes once the worker is in `running`.
                    with deferred_signals():
                        running.append(self.start(number, name, args, workers))
                    self.echo(f"{self.step}: started {number}/{len(calls)} {name}")
                for worker in self.ready(running):
                    running.remove(worker)
                    results[worker.number] = self.collect(worker, calls[worker.number - 1][1])
                    seconds = time.perf_counter() - worker.started
                    note = _result_note(results[worker.number], calls[worker.number - 1][1])
                    self.echo(
                        f"{self.step}: finished {worker.number}/{len(calls)} {worker.name} in {seconds:.1f} s"
                        f"{note} ({len(results)} of {len(calls)} done)"
                    )
        finally:
            if running or queued:
                with deferred_signals():
                    self.stop(running, cancelled=len(queued))
        return [results[number] for number in sorted(results)]

    def start(self, number: int, name: str, args: dict[str, Any], workers: int) -> Worker:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        threads = max(1, (os.cpu_count() or 1) // workers)
        process = context.Process(
            target=_work, args=(send, self.execute, self.step, args, self.work_dir, threads)
        )
        process.start()
        send.close()
        return Worker(number, name, process, receive)

    @staticmethod
    def ready(running: list[Worker]) -> list[Worker]:
        done = wait([worker.outcome for worker in running])
        return [worker for worker in running if worker.outcome in done]

    def collect(self, worker: Worker, args: dict[str, Any]) -> BaseModel:
        try:
            kind, value = worker.outcome.recv()
        except EOFError:  # it died without a word: the OOM killer, a segfault
            worker.process.join()
            raise ModelyardError(
                f"{self.step} {worker.name}: its worker process died (exit code {worker.process.exitcode})"
            ) from None
        finally:
            worker.outcome.close()
        worker.process.join()
        if kind == "error":
            raise value
        return value

    def stop(self, running: list[Worker], cancelled: int) -> None:
        """SIGTERM the running workers, SIGKILL what is left after STOP_GRACE; then the executor's own."""
        if cancelled:
            self.echo(f"{self.step}: cancelled {cancelled} queued")
        for worker in running:
            worker.process.terminate()
            self.echo(f"{self.step}: stopped {worker.number} {worker.name}")
        deadline = time.monotonic() + STOP_GRACE
        for worker in running:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        if running and (stop := getattr(self.execute, "stop", None)):
            stop()


def _work(
    send: Connection, execute: StepExecutor, step: str, args: dict[str, Any], work_dir: Path, threads: int
) -> None:
    """A worker's body. The parent alone decides when it stops: Ctrl-C reaches the whole process
    group, so a worker ignores SIGINT; SIGTERM (from the parent) ends it at once. It keeps to its
    share of the CPUs: OpenMP threads that outnumber the free cores spin waiting for each other
    (histogram boosting on 3,000 rows took 2 s on one thread, 56 s on two of a busy 2-core machine)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with threadpool_limits(threads):
            outcome: tuple[str, Any] = ("ok", execute(step, args, work_dir))
    except BaseException as exc:  # everything goes back to the parent, which raises it
        error = as_transient(exc)
        if not isinstance(error, ModelyardError):  # a bug: its traceback, which does not cross the pipe
            traceback.print_exc()
        outcome = ("error", _picklable(error))
    send.send(outcome)
    send.close()


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # e.g. an exception class whose constructor takes other arguments
        return ModelyardError(f"{type(exc).__name__}: {exc}")


def _result_note(outputs: BaseModel, args: dict[str, Any]) -> str:
    """ ", val f1_macro=0.81" for a train result; "" for any other step's outputs."""
    result, config = getattr(outputs, "result", None), args.get("config")
    if not isinstance(result, str) or not isinstance(config, str):
        return ""
    metric = PipelineConfig.model_validate_json(config).primary_metric
    return f", val {metric}={CandidateResult.model_validate_json(result).score:.4g}"


def _resolve_all(task: Task, inputs: dict[str, Any], run: PipelineRun, item: Any) -> dict[str, Any]:
    return {name: _resolve(source, inputs, run, item) for name, source in task.args.items()}


def _resolve(source: Source, inputs: dict[str, Any], run: PipelineRun, item: Any) -> Any:
    match source:
        case PipelineInput(name):
            return inputs.get(name)
        case TaskOutput(task, output):
            return getattr(run.outputs[task], output)
        case AllOutputs(task, output):
            return json.dumps([getattr(o, output) for o in run.outputs[task]])
        case Item():
            return item if isinstance(item, str) else json.dumps(item)
    raise TypeError(f"unknown source {source!r}")
