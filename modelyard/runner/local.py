"""Run the training DAG on this machine: steps in-process, fanned-out candidates in processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelyard.contract import STEPS, FinishParams
from modelyard.contract.records import RunStatus
from modelyard.pipeline import (
    EXIT_HANDLER,
    TRAINING,
    AllOutputs,
    Item,
    PipelineInput,
    Source,
    Task,
    TaskOutput,
)
from modelyard.runner.retention import hold

# Runs one step; the local runner calls steps in-process, the Docker runner in containers.
StepExecutor = Callable[[str, dict[str, Any], Path], BaseModel]


@dataclass
class PipelineRun:
    work_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        prepared = self.outputs.get("prepare")
        return prepared.run_id if prepared else ""


def run_in_process(step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
    spec = STEPS[step]
    return spec.run(spec.params(**args), work_dir)


def run_pipeline(
    inputs: dict[str, Any],
    work_root: Path,
    *,
    execute: StepExecutor = run_in_process,
    parallel: int | None = None,
    echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> PipelineRun:
    """Execute TRAINING task by task; the exit handler closes the parent run whatever happens."""
    work_dir = work_root / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    work_dir.mkdir(parents=True)
    lock = hold(work_dir)  # `modelyard gc` and --keep-runs spare the directory while it is held
    run = PipelineRun(work_dir)
    status: RunStatus = "Succeeded"
    message = ""
    try:
        for number, task in enumerate(TRAINING, 1):
            echo(f"[{number}/{len(TRAINING)}] {task.name}: {task.step.help}")
            started = time.perf_counter()
            run.outputs[task.name] = _run_task(task, inputs, run, execute, parallel)
            _keep_outputs(task.name, run)
            run.timings[task.name] = time.perf_counter() - started
            echo(f"      {task.name} done in {run.timings[task.name]:.1f}s")
    except BaseException as exc:
        status, message = "Failed", f"{type(exc).__name__}: {exc}"
        echo(f"      {task.name} FAILED")
        raise
    finally:
        if run.run_id:
            finish = FinishParams(run_id=run.run_id, status=status, message=message)
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
    task: Task, inputs: dict[str, Any], run: PipelineRun, execute: StepExecutor, parallel: int | None
) -> Any:
    if task.fan_out is None:
        return execute(task.step.name, _resolve_all(task, inputs, run, None), run.work_dir)
    items = json.loads(_resolve(task.fan_out, inputs, run, None))
    calls = [_resolve_all(task, inputs, run, item) for item in items]
    workers = min(len(calls), parallel or os.cpu_count() or 1)
    if workers <= 1:
        return [execute(task.step.name, args, run.work_dir) for args in calls]
    # fork: workers start with everything imported. They inherit no database connection: the
    # embedded store pools none (tracking.configure sets MLflow's NullPool).
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(execute, [task.step.name] * len(calls), calls, [run.work_dir] * len(calls)))


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
