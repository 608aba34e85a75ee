"""The `modelyard` command. Every step's flags are derived from its params model in the contract."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import BaseModel

from modelyard import __version__
from modelyard.cli.argo import compile_command, submit_command
from modelyard.cli.deploy import deploy
from modelyard.cli.options import options_from, tracking_option
from modelyard.cli.serve import serve
from modelyard.contract import (
    OUTPUTS_DIR,
    STEPS,
    WORK_DIR,
    MonitorParams,
    PrepareParams,
    Step,
    StepName,
    kebab,
    parse_params,
)
from modelyard.contract.records import PROMOTE, RETRAIN
from modelyard.core.errors import BadInputError, ExitCode, ModelyardError, RejectedError
from modelyard.core.signals import Interrupted, stop_signals_raise
from modelyard.core.transient import is_transient, transient_message
from modelyard.runner.retention import DEFAULT_KEEP, ENV_KEEP_RUNS


class Cli(click.Group):
    """Maps the project's exceptions to their exit codes once, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelyardError as exc:
            _fail(ctx, exc.exit_code, str(exc))
        except Interrupted as exc:  # what was open is closed by now: the finally blocks ran
            _stopped(exc)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            _fail(ctx, ExitCode.TRANSIENT, transient_message(exc))


# In a Kubernetes container the last words of a process; Argo shows them as the step's message.
TERMINATION_LOG = Path("/dev/termination-log")


def _fail(ctx: click.Context, code: ExitCode, message: str) -> None:
    _last_words(message)
    ctx.exit(int(code))


def _last_words(message: str) -> None:
    click.echo(f"modelyard: error: {message}", err=True)
    if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        TERMINATION_LOG.write_text(message[:4000])  # the kubelet keeps at most 4096 bytes


def _stopped(exc: Interrupted) -> NoReturn:
    """Report a stop and exit 130/143 at once. The runs are closed already; the interpreter's own
    teardown with scikit-learn, pandas and MLflow loaded takes seconds, which a stop should not."""
    _last_words(str(exc))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exc.exit_code)


runs_dir_option = click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path(".modelyard/runs"),
    show_default=True,
    help="Where local pipeline runs keep their step artifacts.",
)


@click.group(cls=Cli)
@click.version_option(__version__, prog_name="modelyard")
@click.option("-v", "--verbose", is_flag=True, help="Show library logs.")
def main(verbose: bool) -> None:
    """ML training pipelines built the way DevOps engineers ship software."""
    stop_signals_raise()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        # MLflow sets its loggers' level when it is imported, after this: it reads the variable then.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        logging.getLogger("mlflow").setLevel(logging.ERROR)


class RefusesEmptyValues(click.Command):
    """A command where an explicitly empty value (`--model-name ""`) is a mistake, not "the
    default": refused before anything runs. (Step commands take "" as unset: Argo passes that.)"""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if flag := empty_flag(self, args):
            raise BadInputError(f"{flag} is empty: give it a value or leave the flag out")
        return super().parse_args(ctx, args)


def empty_flag(command: click.Command, args: list[str]) -> str | None:
    """The first option given an empty value (`--name ""` or `--name=`), before click converts it
    (click turns an empty path into ".")."""
    takes_value = {o for p in command.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
    for token, following in zip(args, [*args[1:], None], strict=False):
        if token == "--":
            break
        name, equals, value = token.partition("=")
        if name in takes_value and (not value if equals else following == ""):
            return name
    return None


@main.command(cls=RefusesEmptyValues)
@options_from(PrepareParams, skip=("config",))
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML config file; flags override it."
)
@tracking_option
@runs_dir_option
@click.option("--parallel", type=click.IntRange(1), help="Candidates trained at once [default: CPU count].")
@click.option(
    "--image", help="Run each step in a container of this trainer image (needs Docker and an MLflow server)."
)
@click.option("--strict", is_flag=True, help="Exit 3 when the challenger is rejected (for CI).")
@click.option(
    "--keep-runs",
    type=click.IntRange(1),
    envvar=ENV_KEEP_RUNS,
    show_envvar=True,
    help="After the run, delete all but the newest N run directories under --work-dir [default: keep all].",
)
def run(
    config_file: Path | None,
    tracking_uri: str | None,
    work_dir: Path,
    parallel: int | None,
    image: str | None,
    strict: bool,
    keep_runs: int | None,
    **overrides: Any,
) -> None:
    """Run the whole pipeline on this machine."""
    from modelyard.backends.tracking import configure, writable_dir
    from modelyard.cli.summary import summarize
    from modelyard.contract.config import load_config, read_config_file
    from modelyard.runner.local import run_pipeline

    text = read_config_file(config_file)
    inputs = parse_params(PrepareParams, {"config": text, **overrides}).model_dump()  # fail before any run
    load_config(text, {k: v for k, v in inputs.items() if k != "config"})  # before .modelyard/ exists
    writable_dir(work_dir)
    uri = configure(tracking_uri)  # creates the embedded store: every check comes before
    try:
        if image:
            from modelyard.runner.docker import DockerExecutor

            result = run_pipeline(inputs, work_dir, execute=DockerExecutor(image, uri), parallel=parallel)
        else:
            result = run_pipeline(inputs, work_dir, parallel=parallel)
    finally:
        if keep_runs is not None:
            _prune(work_dir, keep_runs)
    model_name = json.loads(result.outputs[StepName.PREPARE].config)["model_name"]
    click.echo(summarize(result, model_name, uri))
    if strict and result.outputs[StepName.REGISTER].decision != PROMOTE:
        raise RejectedError(f"challenger v{result.outputs['register'].version} was rejected (--strict)")


def _prune(work_dir: Path, keep: int) -> None:
    from modelyard.runner.retention import prune

    removed, freed = prune(work_dir, keep)
    if removed:
        click.echo(f"gc: deleted {len(removed)} old run directories ({freed / 2**20:.1f} MiB)", err=True)


@main.command()
@runs_dir_option
@click.option(
    "--keep",
    type=click.IntRange(1),
    default=DEFAULT_KEEP,
    show_default=True,
    help="Run directories to keep, newest first; a directory a running run holds is never deleted.",
)
def gc(work_dir: Path, keep: int) -> None:
    """Delete the step artifacts (splits, reports) of all but the newest local runs."""
    _prune(work_dir, keep)


@main.group()
def step() -> None:
    """Run one pipeline step (what a container or an Argo pod runs)."""


def _step_command(spec: Step) -> click.Command:
    @options_from(spec.params)
    @tracking_option
    @click.option(
        "--work-dir",
        type=click.Path(path_type=Path),
        default=Path(WORK_DIR),
        show_default=True,
        help="Artifacts are read from and written to <work-dir>/<artifact>.",
    )
    def command(tracking_uri: str | None, work_dir: Path, **params: Any) -> None:
        from modelyard.backends.tracking import configure

        configure(tracking_uri)
        outputs = spec.run(parse_params(spec.params, params), work_dir)
        write_outputs(outputs, work_dir / OUTPUTS_DIR)
        click.echo(outputs.model_dump_json())

    inputs = ", ".join(spec.inputs) or "none"
    produces = ", ".join(spec.produces) or "none"
    codes = ", ".join(f"{int(c)} {c.name.lower()}" for c in spec.exit_codes)
    help_text = (
        f"{spec.help}\n\nReads artifacts: {inputs}. Writes artifacts: {produces}. Exit codes: {codes}."
    )
    return click.command(spec.name, help=help_text)(command)


def write_outputs(outputs: BaseModel, directory: Path) -> None:
    """Each output parameter as a file named after it, for Argo's valueFrom.path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.model_dump().items():
        (directory / kebab(name)).write_text(str(value))


for _spec in STEPS.values():
    step.add_command(_step_command(_spec))


@main.command(cls=RefusesEmptyValues)
@options_from(STEPS[StepName.ROLLBACK].params)
@tracking_option
def rollback(tracking_uri: str | None, **params: Any) -> None:
    """Move the champion alias back to the previous champion."""
    from modelyard.backends.tracking import configure

    configure(tracking_uri)
    spec = STEPS[StepName.ROLLBACK]
    outputs = spec.run(parse_params(spec.params, params), Path("."))
    click.echo(outputs.model_dump_json())


@main.command(cls=RefusesEmptyValues)
@options_from(MonitorParams)
@tracking_option
@click.option(
    "--retrain", is_flag=True, help="Run the training pipeline on the batch when the verdict is retrain."
)
@runs_dir_option
def monitor(tracking_uri: str | None, retrain: bool, work_dir: Path, **params: Any) -> None:
    """Check a batch of recent data for drift and the champion for decay; exit 0 whatever the verdict."""
    from modelyard.backends.tracking import configure, writable_dir
    from modelyard.runner.local import forking_parent
    from modelyard.steps.monitor import check

    if retrain:
        writable_dir(work_dir)
    uri = configure(tracking_uri)
    with forking_parent():  # it predicts with the champion here, then forks the retraining's workers
        outputs, table = check(parse_params(MonitorParams, params))
    click.echo(table)
    click.echo(f"verdict: {outputs.verdict}  (MLflow run {outputs.run_id})")
    if retrain and outputs.verdict == RETRAIN:
        from modelyard.cli.summary import summarize
        from modelyard.runner.local import run_pipeline

        click.echo(f"retraining {params['model_name']} on {params['dataset']}", err=True)
        inputs = parse_params(
            PrepareParams, {"config": outputs.config, "dataset": outputs.dataset}
        ).model_dump()
        result = run_pipeline(inputs, work_dir)
        click.echo(summarize(result, params["model_name"], uri))


main.add_command(compile_command)
main.add_command(submit_command)
main.add_command(serve)
main.add_command(deploy)

if __name__ == "__main__":
    sys.exit(main())
