"""Two pipelines at once on one store: the store is created once, and the champion moves only by a
compare-and-set under the model's lock, so every summary tells the truth."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest import MODELYARD, ONE_CANDIDATE, make_customers, modelyard
from mlflow import MlflowClient

from modelyard.backends.tracking import configure, embedded_uri, file_lock, lock_path
from modelyard.cli.summary import summarize
from modelyard.contract import PrepareParams, parse_params
from modelyard.runner.local import run_in_process, run_pipeline

MODEL = "churn"


def summary_rows(stdout: str) -> dict[str, str]:
    """The final table of `modelyard run`: row name -> value."""
    return dict(re.findall(r"^  (\S+(?: \S+)*?) {2,}(.*)$", stdout, re.MULTILINE))


def champion(uri: str) -> str:
    aliases = MlflowClient(uri).get_registered_model(MODEL).aliases
    return str(aliases.get("champion", ""))


def test_two_concurrent_runs_on_a_fresh_store_both_succeed_and_tell_the_truth(tmp_path: Path) -> None:
    make_customers().to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(ONE_CANDIDATE)  # the store and the lock are under test
    args = ("run", "--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn")
    args += ("--model-name", MODEL, "--parallel", "1")
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: modelyard(*args, cwd=tmp_path), range(2)))
    for run in done:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    uri = embedded_uri(tmp_path / ".modelyard")
    client = MlflowClient(uri)
    summaries = [summary_rows(run.stdout) for run in done]
    versions = {s["registered"].removeprefix(f"{MODEL} v") for s in summaries}
    assert versions == {"1", "2"}, summaries
    promoted = [s for s in summaries if s["decision"] == "PROMOTE"]
    assert promoted, summaries  # the first to register promotes over "no champion"
    over_none = [
        v
        for v in client.search_model_versions(f"name='{MODEL}'")
        if "modelyard.promoted_at" in v.tags and "modelyard.previous_champion" not in v.tags
    ]
    assert len(over_none) == 1, [v.tags for v in over_none]
    for summary in summaries:
        version = summary["registered"].removeprefix(f"{MODEL} v")
        tags = client.get_model_version(MODEL, version).tags
        assert tags["modelyard.decision"] == summary["decision"].lower()
        if summary["decision"] == "PROMOTE":
            assert summary["@champion"] == f"v{version}", summary
        else:  # it was evaluated against "no champion" while the other run promoted
            (other,) = versions - {version}
            assert summary["@champion"] == f"v{other}", summary
            assert summary["note"] == (
                f"the champion changed from none to v{other} while this run was evaluated; "
                f"not promoted: rerun to compare with v{other}"
            )
    if len(promoted) == 2:  # one after the other: the second compared with and replaced the first
        second = client.get_model_version(MODEL, champion(uri))
        assert second.tags["modelyard.previous_champion"] == str(3 - int(second.version))
    else:
        assert champion(uri) == promoted[0]["registered"].removeprefix(f"{MODEL} v")


def open_store(uri: str, start: Any) -> None:
    """A process's first use of the store, all of them at once (module level: picklable)."""
    start.wait()
    configure(uri)
    MlflowClient(uri).search_experiments()


def test_processes_opening_a_fresh_store_at_once_create_it_once(tmp_path: Path) -> None:
    uri = embedded_uri(tmp_path / ".modelyard")
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    start = context.Barrier(2)
    workers = [context.Process(target=open_store, args=(uri, start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]


def test_register_does_not_promote_over_a_champion_that_moved_since_evaluate(
    tmp_path: Path, tracking_uri: str, customers_csv: Path
) -> None:
    """Another run promotes after this one's evaluate compared with "no champion": register refuses."""

    def execute(step: str, args: dict[str, Any], work_dir: Path) -> Any:
        if step == "register":
            (tmp_path / "pipeline.yaml").write_text(ONE_CANDIDATE)
            other = modelyard(
                "run",
                "--config",
                "pipeline.yaml",
                "--dataset",
                str(customers_csv),
                "--label",
                "churn",
                "--model-name",
                MODEL,
                cwd=tmp_path,
            )
            assert other.returncode == 0, other.stderr
            assert summary_rows(other.stdout)["@champion"] == "v1", other.stdout
        return run_in_process(step, args, work_dir)

    inputs = parse_params(
        PrepareParams,
        {"config": ONE_CANDIDATE, "dataset": str(customers_csv), "label": "churn", "model_name": MODEL},
    ).model_dump()
    result = run_pipeline(inputs, tmp_path / "runs", execute=execute, parallel=1)
    registered = result.outputs["register"]
    note = "the champion changed from none to v1 while this run was evaluated; not promoted: rerun to compare with v1"
    assert (registered.decision, registered.version, registered.champion_version) == ("reject", "2", "1")
    assert registered.note == note
    assert champion(tracking_uri) == "1"
    client = MlflowClient(tracking_uri)
    version = client.get_model_version(MODEL, "2")
    assert version.tags["modelyard.decision"] == "reject" and version.tags["modelyard.reasons"] == note
    assert "modelyard.promoted_at" not in version.tags
    parent = client.get_run(result.run_id).data.tags
    assert parent["modelyard.decision"] == "reject" and parent["modelyard.note"] == note
    rows = summary_rows(summarize(result, MODEL, tracking_uri) + "\n")
    assert (rows["decision"], rows["@champion"], rows["note"]) == ("REJECT", "v1", note)


def two_champions(uri: str) -> MlflowClient:
    """v1 and v2 of the model, v2 the champion that replaced v1 (as two promotions leave them)."""
    client = MlflowClient(uri)
    client.create_registered_model(MODEL)
    experiment = client.create_experiment("rollback")
    for number in ("1", "2"):
        run = client.create_run(experiment)
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", number)
    client.set_model_version_tag(MODEL, "2", "modelyard.previous_champion", "1")
    return client


def waiting_on(lock: Path, pid: int) -> bool:
    """True when the process is blocked waiting for the flock on this file (Linux /proc/locks)."""
    inode = f":{os.stat(lock).st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f" {pid} " in line and inode in line for line in lines)


def test_rollback_waits_for_the_models_promotion_lock(tmp_path: Path, tracking_uri: str) -> None:
    two_champions(tracking_uri)
    lock = lock_path(MODEL)
    assert lock.parent == tmp_path / "mlflow" / "locks"
    with file_lock(lock):
        back = subprocess.Popen(
            [*MODELYARD, "rollback", "--model-name", MODEL, "--reason", "bad canary"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not waiting_on(lock, back.pid):
            assert back.poll() is None, back.communicate()
            assert time.monotonic() < deadline, "rollback never asked for the lock"
            time.sleep(0.2)
        assert champion(tracking_uri) == "2"  # nothing moved while the lock is held
    _, stderr = back.communicate(timeout=120)
    assert back.returncode == 0, stderr
    assert champion(tracking_uri) == "1"
    assert "champion moved back from v2 to v1 (bad canary)" in stderr


def test_a_tracking_servers_locks_are_per_server_in_the_temp_dir() -> None:
    path = lock_path(MODEL, "http://127.0.0.1:5000")
    assert path.name == f"{MODEL}.lock"
    assert path.parent.parent == Path(tempfile.gettempdir()) / "modelyard-locks"
    assert lock_path(MODEL, "http://other:5000").parent != path.parent
    assert lock_path("other-model", "http://127.0.0.1:5000").parent == path.parent
