"""The user's path on a real cluster, as the README tells it: ten scenarios on real pods.

Each test prints what it checked. State one needs (a champion, a second champion) comes from a
fixture, so any test runs alone: `pytest tests/e2e -k rollback`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import kube
import pytest
import yaml
from kubernetes import client
from minio import Minio

from e2e.conftest import (
    ARGO_NAMESPACE,
    CONFIG,
    LABEL,
    NAMESPACE,
    ONE_CANDIDATE,
    REPORT,
    Release,
    alerts,
    image_tags,
)
from e2e.harness import REPO, Argo, PortForward, Traffic, exit_code, pod_nodes, sh, traefik_entry
from modelyard.backends.kubernetes import POD_TEMPLATE_HASH
from modelyard.contract.serving import MODEL_LABEL, MODEL_VERSION_ANNOTATION, invocations_path

# One model per test session, so a run never meets the champion an earlier session left.
MODEL: Final = f"e2e-churn-{int(time.time())}"
MONITORED: Final = f"e2e-monitored-{int(time.time())}"  # test_4b's, trained beside MODEL's first
TAG: Final = "modelyard."
TRAINING: Final = "workflowtemplate/modelyard-train"
MONITOR_CRON: Final = "cronwf/modelyard-monitor"
TRAINING_RECORD: Final = REPORT.parent / "e2e-training-workflow.json"
STEPS: Final = {"prepare", "split", "validate", "train", "select", "evaluate", "register", "finish"}
SERVED_REQUESTS: Final = 2000


# The chart's canary steps (5% then 25%), each analysed over 20 s on the customers table (two sound
# models of it agree on most rows, one trained on flipped labels on few); a version not ready in
# 120 s is aborted.
def serving_values(rows: str) -> dict[str, Any]:
    analysis = {"dataset": rows, "thresholds": {"minAgreement": 0.7, "maxMetricDrop": 0.1}}
    canary = {"weights": [5, 25], "stepSeconds": 20, "analysis": analysis}
    return {
        "serving": {
            "enabled": True,
            "models": [{"name": MODEL}],
            "canary": canary,
            "progressDeadlineSeconds": 120,
        }
    }


CANARY_SAMPLE: Final = 600

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mlflow(mlflow_client: Any, mlflow_forward: PortForward) -> Callable[[], Any]:
    """The MLflow client, its port-forward restarted first if MLflow's pod changed."""

    def current() -> Any:
        mlflow_forward.ensure()
        return mlflow_client

    return current


def submit_training(
    argo: Argo, dataset: str, config_text: str, model: str | None = MODEL, **extra: str
) -> str:
    params = {"dataset": dataset, "label": LABEL, "config": config_text, **extra}
    if model:
        params["model_name"] = model
    return argo.submit(TRAINING, **params)


def train(
    argo: Argo, dataset: str, config_text: str, model: str | None = MODEL, **extra: str
) -> dict[str, Any]:
    return argo.wait(submit_training(argo, dataset, config_text, model, **extra))


def champion(mlflow: Callable[[], Any], model: str = MODEL) -> Any:
    return mlflow().get_model_version_by_alias(model, "champion")


def parent_run(mlflow: Callable[[], Any], workflow: dict[str, Any]) -> Any:
    uid = workflow["metadata"]["uid"]
    experiments = [e.experiment_id for e in mlflow().search_experiments()]
    (run,) = mlflow().search_runs(experiments, filter_string=f"tags.`{TAG}workflow_uid` = '{uid}'")
    return run


@dataclass(frozen=True)
class Early:
    """Workflows that meet nothing another test does, submitted beside scenario 1's training (the
    cluster runs them at once; each test waits for its own): test_2's bad data (missing values: a
    gate only when set), test_4b's model, test_6's two trainings of one model and test_8's Parquet."""

    bad: str
    monitored: str
    flipped: str  # MODEL trained on flipped labels: registered, rejected, a broken canary for test_12b
    concurrent_model: str
    concurrent: tuple[str, str]
    parquet: dict[str, tuple[str, str, str]]  # form: (dataset URI, model, workflow)

    def names(self) -> list[str]:
        return [
            self.bad,
            self.monitored,
            self.flipped,
            *self.concurrent,
            *(name for *_, name in self.parquet.values()),
        ]


@pytest.fixture(scope="module")
def early(
    argo: Argo, datasets: dict[str, str], bucket: Minio, config_text: str, tmp_path_factory: Any
) -> Early:
    from conftest import make_customers

    model = f"e2e-concurrent-{int(time.time())}"
    # One names the model as a parameter, the other only in its config: the same lock either way.
    one_candidate = yaml.safe_dump(ONE_CANDIDATE)
    by_param = submit_training(argo, datasets["customers"], one_candidate, model)
    by_config = argo.submit(
        TRAINING, dataset=datasets["customers"], config=yaml.safe_dump(ONE_CANDIDATE | {"model_name": model})
    )
    rows = make_customers(rows=600, seed=3)
    uris = upload_parquet(bucket, f"e2e-parquet-{int(time.time())}", rows, tmp_path_factory.mktemp("parquet"))
    parquet = {
        form: (uri, f"{MODEL}-{form}", submit_training(argo, uri, one_candidate, f"{MODEL}-{form}"))
        for form, uri in uris.items()
    }
    return Early(
        bad=submit_training(argo, datasets["bad"], config_text, max_null_fraction="0.1"),
        monitored=submit_training(argo, datasets["customers"], one_candidate, MONITORED),
        # A gate it cannot pass: rejected whether or not MODEL has a champion yet.
        flipped=submit_training(argo, datasets["flipped"], one_candidate, min_accuracy="0.9"),
        concurrent_model=model,
        concurrent=(by_param, by_config),
        parquet=parquet,
    )


@pytest.fixture(scope="module")
def early_ended(argo: Argo, early: Early) -> Early:
    """Every early workflow has ended: for a test that disturbs the cluster's services."""
    for name in early.names():
        argo.wait(name)
    return early


@pytest.fixture(scope="module")
def trained(argo: Argo, datasets: dict[str, str], config_text: str, early: Early) -> dict[str, Any]:
    """Scenario 1's training workflow: MODEL's first champion (kept for benchmarks/e2e_steps.py)."""
    workflow = train(argo, datasets["customers"], config_text)
    TRAINING_RECORD.parent.mkdir(exist_ok=True)
    TRAINING_RECORD.write_text(json.dumps(workflow, indent=1))
    return workflow


@pytest.fixture(scope="module")
def two_champions(
    trained: dict[str, Any], argo: Argo, datasets: dict[str, str], config_text: str, mlflow: Any
) -> Any:
    """A champion that replaced another (trained again if none did yet)."""
    return with_previous_champion(argo, datasets, config_text, mlflow)


def with_previous_champion(argo: Argo, datasets: dict[str, str], config_text: str, mlflow: Any) -> Any:
    """MODEL's champion, trained again first unless it replaced another (a rollback to the first
    version leaves a champion with none before it)."""
    if not champion(mlflow).tags.get(f"{TAG}previous_champion"):
        assert train(argo, datasets["customers"], config_text)["status"]["phase"] == "Succeeded"
    return champion(mlflow)


def test_1_training_from_s3_runs_every_step_and_candidate_in_a_pod_and_records_lineage(
    trained: dict[str, Any], mlflow: Any, bucket: Minio
) -> None:
    workflow, name = trained, trained["metadata"]["name"]
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    pods = pod_nodes(workflow)
    per_step = Counter(n["templateName"] for n in pods)
    candidates = sum(
        len(v.get("C", [1])) * len(v.get("n_estimators", [1])) for v in CONFIG["search_space"].values()
    )
    print(f"{name}: pods per step {dict(per_step)}")
    assert set(per_step) == STEPS
    assert per_step["train"] == candidates == 3
    assert all(n["phase"] == "Succeeded" and n.get("hostNodeName") for n in pods)
    # promotion: champion (the default): the deploy task is skipped, register moved champion.
    deploy = [n for n in workflow["status"]["nodes"].values() if n.get("templateName") == "deploy"]
    assert [n["phase"] for n in deploy] == ["Skipped"], deploy

    version = champion(mlflow)
    tags = version.tags
    print(
        f"champion {MODEL} v{version.version}; lineage { ({k: v for k, v in tags.items() if 'workflow' in k or 'image' in k}) }"
    )
    assert tags[f"{TAG}workflow_name"] == name
    assert tags[f"{TAG}workflow_uid"] == workflow["metadata"]["uid"]
    assert tags[f"{TAG}image"] == image_tags()["MODELYARD_TRAINER_IMAGE"]
    assert tags[f"{TAG}dataset"].startswith("s3://datasets/")

    models = [o.object_name for o in bucket.list_objects("mlflow-artifacts", recursive=True)]
    steps = [o.object_name for o in bucket.list_objects("argo-artifacts", prefix=f"{name}/", recursive=True)]
    print(f"MinIO: {len(models)} MLflow objects, Argo step artifacts {steps}")
    model_id = version.source.removeprefix("models:/")  # the logged model the version points at
    assert any(key.endswith(f"/models/{model_id}/artifacts/MLmodel") for key in models)
    assert {key.rsplit("/", 1)[1] for key in steps} >= {"splits.tgz", "evaluation.tgz"}


def test_2_bad_data_fails_at_validate_with_exit_2_unretried_and_the_run_closes_failed(
    trained: dict[str, Any], early: Early, argo: Argo, mlflow: Any, api: client.ApiClient
) -> None:
    before = champion(mlflow).version
    workflow = argo.wait(early.bad)
    validate = [n for n in pod_nodes(workflow) if n["templateName"] == "validate"]
    print(
        f"{workflow['metadata']['name']}: {workflow['status']['phase']}; validate attempts {[exit_code(n) for n in validate]}"
    )
    assert workflow["status"]["phase"] == "Failed"
    assert [exit_code(n) for n in validate] == ["2"], "exactly one attempt, exit code 2"
    assert not [n for n in pod_nodes(workflow) if n["templateName"] in ("train", "register")]

    run = parent_run(mlflow, workflow)
    reason = run.data.tags[f"{TAG}failure"]
    print(f"MLflow run {run.info.run_id}: {run.info.status}, reason: {reason}")
    assert run.info.status == "FAILED"
    assert "validate" in reason and "missing" in reason and '\\"' not in reason
    assert champion(mlflow).version == before

    alert = kube.wait_until(
        lambda: [a for a in alerts(api) if run.info.run_id in a], "the failure alert at the receiver", 120
    )
    print(f"alert received: {alert[0]}")
    assert "failed" in alert[0] and "missing" in alert[0]


def test_3_an_mlflow_outage_during_training_is_retried_on_75_and_registers_once(
    argo: Argo,
    datasets: dict[str, str],
    mlflow: Any,
    api: client.ApiClient,
    monitored: str,
    early_ended: Early,  # the outage must not meet the workflows submitted early
) -> None:
    model = f"e2e-outage-{int(time.time())}"
    core = client.CoreV1Api(api)
    one_candidate = yaml.safe_dump(ONE_CANDIDATE)
    name = argo.submit(
        TRAINING, dataset=datasets["customers"], label=LABEL, config=one_candidate, model_name=model
    )

    def running(step: str) -> bool:
        pods = core.list_namespaced_pod(
            NAMESPACE, label_selector=f"workflows.argoproj.io/workflow={name}"
        ).items
        return any(
            p.metadata.name.startswith(f"{name}-{step}-") and p.status.phase == "Running" for p in pods
        )

    def exited_75() -> list[dict[str, Any]]:
        return [
            n
            for n in pod_nodes(argo.get(name))
            if exit_code(n) == "75" and n["templateName"] in ("train", "register")
        ]

    deletions = 0
    while not exited_75():
        assert deletions < 5, "no step exited 75 after five MLflow outages"
        kube.wait_until(
            lambda: running("train") or running("register"), "a train or register pod running", 600, 0.5
        )
        for pod in core.list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/component=mlflow"
        ).items:
            core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
        deletions += 1
        print(f"deleted the MLflow pod while {name} trains ({deletions})")
        deadline = time.monotonic() + 60  # the step's MLflow calls give up within their bounded retries
        while not exited_75() and time.monotonic() < deadline:
            time.sleep(1)
    workflow = argo.wait(name)
    retried = [
        n["displayName"]
        for n in pod_nodes(workflow)
        if exit_code(n) == "75" and n["templateName"] in ("train", "register")
    ]
    versions = mlflow().search_model_versions(f"name = '{model}'")
    print(
        f"{name}: {workflow['status']['phase']}; attempts that exited 75: {retried}; versions: {len(versions)}"
    )
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert retried
    assert len(versions) == 1


def cron_runs(argo: Argo, cron: str, after: datetime) -> list[dict[str, Any]]:
    runs = argo.workflows(f"workflows.argoproj.io/cron-workflow={cron}")
    return [w for w in runs if datetime.fromisoformat(w["metadata"]["creationTimestamp"]) > after]


def next_cron_run(argo: Argo, cron: str, after: datetime) -> dict[str, Any]:
    """The first run the CronWorkflow starts after `after`, once it has ended."""
    first = kube.wait_until(lambda: cron_runs(argo, cron, after), f"{cron} to fire", 240, 5)
    return argo.wait(min(first, key=lambda w: w["metadata"]["creationTimestamp"])["metadata"]["name"])


def now() -> datetime:
    """A moment just before now (the cluster's clock is this machine's, or kind's on it)."""
    return datetime.now(UTC) - timedelta(seconds=5)


def schedule(cron: str, parameters: dict[str, str]) -> dict[str, Any]:
    return {
        "pipeline": {
            "cronWorkflows": {cron: {"schedules": ["* * * * *"], "suspend": False, "parameters": parameters}}
        }
    }


def test_4a_the_retrain_cron_fires_on_its_schedule_and_registers_a_new_version(
    trained: dict[str, Any],
    release: Release,
    argo: Argo,
    api: client.ApiClient,
    datasets: dict[str, str],
    config_text: str,
    mlflow: Any,
) -> None:
    before = {v.version for v in mlflow().search_model_versions(f"name = '{MODEL}'")}
    start = now()
    parameters = {
        "dataset": datasets["customers"],
        "label": LABEL,
        "model-name": MODEL,
        "config": config_text,
    }
    release.install(schedule("modelyard-retrain", parameters))
    try:
        run = next_cron_run(argo, "modelyard-retrain", start)
    finally:
        release.install()
    new = {v.version for v in mlflow().search_model_versions(f"name = '{MODEL}'")} - before
    print(
        f"{run['metadata']['name']} fired by the schedule: {run['status']['phase']}; new versions {sorted(new)}"
    )
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert new


def monitor_outputs(workflow: dict[str, Any]) -> dict[str, str]:
    (node,) = [n for n in pod_nodes(workflow) if n["templateName"] == "monitor"]
    return {p["name"]: p.get("value", "") for p in node["outputs"]["parameters"]}


def triggered_by(argo: Argo, workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return argo.workflows(f"modelyard.dev/triggered-by={workflow['metadata']['name']}")


@pytest.fixture(scope="module")
def monitored(argo: Argo, early: Early) -> str:
    """A model of its own for the monitor, its champion trained on the customers' distribution."""
    assert argo.wait(early.monitored)["status"]["phase"] == "Succeeded"
    return MONITORED


def test_4b_the_monitor_cron_submits_nothing_on_a_fresh_batch_and_retrains_on_a_drifted_one(
    monitored: str, argo: Argo, datasets: dict[str, str]
) -> None:
    """Submitted from the CronWorkflow itself (`argo submit --from cronwf/...`), the spec its schedule
    runs; test_4a proves a schedule fires. The retraining is submitted by a step of the monitor
    workflow, so once that workflow has ended, any submission exists."""
    # Fresh first: retraining on the drifted batch makes a champion the fresh batch drifts from.
    fresh = argo.wait(argo.submit(MONITOR_CRON, dataset=datasets["fresh"], model_name=monitored))
    verdict = monitor_outputs(fresh)["verdict"]
    print(
        f"{fresh['metadata']['name']} on the fresh batch: verdict {verdict}; submitted {len(triggered_by(argo, fresh))}"
    )
    assert fresh["status"]["phase"] == "Succeeded", fresh["status"].get("message")
    assert verdict != "retrain"
    assert triggered_by(argo, fresh) == []

    drifted = argo.wait(argo.submit(MONITOR_CRON, dataset=datasets["drifted"], model_name=monitored))
    verdict = monitor_outputs(drifted)["verdict"]
    (retraining,) = triggered_by(argo, drifted)
    retrained = argo.wait(retraining["metadata"]["name"])
    parameters = {p["name"]: p["value"] for p in retrained["spec"]["arguments"]["parameters"]}
    config = json.loads(parameters["config"])
    print(
        f"{drifted['metadata']['name']} on the drifted batch: verdict {verdict}; "
        f"submitted {retraining['metadata']['name']}: {retrained['status']['phase']}"
    )
    assert verdict == "retrain"
    assert retrained["status"]["phase"] == "Succeeded", retrained["status"].get("message")
    assert (config["model_name"], config["label"], config["dataset"]) == (
        monitored,
        LABEL,
        datasets["drifted"],
    )
    assert config["search_space"] == ONE_CANDIDATE["search_space"]


def test_5_the_rollback_template_moves_champion_back(two_champions: Any, argo: Argo, mlflow: Any) -> None:
    current = champion(mlflow)
    previous = current.tags[f"{TAG}previous_champion"]
    workflow = argo.wait(argo.submit("workflowtemplate/modelyard-rollback", model_name=MODEL))
    after = champion(mlflow)
    print(f"rollback {workflow['metadata']['name']}: champion v{current.version} -> v{after.version}")
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert after.version == previous
    assert mlflow().get_model_version(MODEL, current.version).tags[f"{TAG}rollback_reason"]


def test_6_concurrent_trainings_of_one_model_promote_one_at_a_time(
    early: Early, argo: Argo, mlflow: Any
) -> None:
    model = early.concurrent_model
    workflows = [argo.wait(name) for name in early.concurrent]
    spans = []
    for workflow in workflows:
        assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
        (register,) = [n for n in pod_nodes(workflow) if n["templateName"] == "register"]
        spans.append((register["startedAt"], register["finishedAt"]))
    (first, second) = sorted(spans)
    print(f"register steps {spans}")
    assert first[1] <= second[0], "the promotion lock let both register at once"

    versions = {v.version: v for v in mlflow().search_model_versions(f"name = '{model}'")}
    chain, version = [], champion(mlflow, model).version
    while version:
        chain.append(version)
        version = versions[version].tags.get(f"{TAG}previous_champion", "")
    promoted = sorted(
        (v for v in versions.values() if f"{TAG}promoted_at" in v.tags),
        key=lambda v: v.tags[f"{TAG}promoted_at"],
    )
    print(f"{model}: versions {sorted(versions)}, champion chain {chain}")
    assert len(versions) == 2
    assert chain == [v.version for v in reversed(promoted)], "every promotion names the champion it replaced"


def argo_server(api: client.ApiClient) -> tuple[str, int]:
    """The Argo Server's Service (port 2746) in Argo's namespace, whoever installed it."""
    services = client.CoreV1Api(api).list_namespaced_service(ARGO_NAMESPACE).items
    for service in services:
        for port in service.spec.ports:
            if port.port == 2746:
                return service.metadata.name, port.port
    raise AssertionError(f"no Argo Server Service on port 2746 in namespace {ARGO_NAMESPACE}")


def test_7_modelyard_submit_trains_through_the_argo_server(
    api: client.ApiClient, argo: Argo, datasets: dict[str, str], config_text: str, tmp_path: Any
) -> None:
    forward = PortForward(ARGO_NAMESPACE, *argo_server(api))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(ONE_CANDIDATE))
    try:
        server = forward.ensure()
        out = sh(
            str(REPO / ".venv" / "bin" / "modelyard"), "submit", "--argo-server", server, "-n", NAMESPACE,
            "--config", str(config), "--dataset", datasets["customers"], "--model-name", "e2e-submit", "--wait",
            timeout=1500,
        )  # fmt: skip
    finally:
        forward.stop()
    print(out)
    assert "Succeeded" in out
    assert "decision: promote" in out


def upload_parquet(bucket: Minio, prefix: str, rows: Any, tmp: Path) -> dict[str, str]:
    """The same rows as one Parquet file and as a directory partitioned on `plan` (pandas' layout)."""
    rows.to_parquet(tmp / "rows.parquet", index=False)
    rows.to_parquet(tmp / "parts", partition_cols=["plan"], index=False)
    bucket.fput_object("datasets", f"{prefix}/customers.parquet", str(tmp / "rows.parquet"))
    for part in (tmp / "parts").rglob("*.parquet"):
        bucket.fput_object("datasets", f"{prefix}/parts/{part.relative_to(tmp / 'parts')}", str(part))
    return {
        "file": f"s3://datasets/{prefix}/customers.parquet",
        "directory": f"s3://datasets/{prefix}/parts/",
    }


def test_8_parquet_a_file_and_a_partitioned_directory_in_minio_train_through_argo(
    early: Early, argo: Argo, mlflow: Any
) -> None:
    for form, (uri, model, name) in early.parquet.items():
        workflow = argo.wait(name)
        print(f"{name}: Parquet {form} {uri}: {workflow['status']['phase']}")
        assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
        assert champion(mlflow, model).tags[f"{TAG}dataset"] == uri


def modelyard_from_host(*args: str, tracking_uri: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI on the host with a clean environment: only PATH, HOME and the tracking URI flag."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "modelyard"), *args, "--tracking-uri", tracking_uri],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_9_from_the_host_through_a_port_forward_monitor_rollback_and_pyfunc_work_without_settings(
    trained: dict[str, Any],
    argo: Argo,
    datasets: dict[str, str],
    config_text: str,
    mlflow: Any,
    mlflow_forward: PortForward,
    tmp_path: Path,
) -> None:
    from conftest import make_customers

    uri = f"http://{mlflow_forward.ensure()}"
    make_customers(rows=300, seed=11).to_csv(tmp_path / "batch.csv", index=False)
    started = time.monotonic()
    monitored = modelyard_from_host("monitor", "--dataset", "batch.csv", "--model-name", MODEL,
                                    tracking_uri=uri, cwd=tmp_path)  # fmt: skip
    print(f"monitor from the host in {time.monotonic() - started:.1f} s: {monitored.stdout.strip()[-200:]}")
    assert monitored.returncode == 0, monitored.stderr[-2000:]

    before = with_previous_champion(argo, datasets, config_text, mlflow)
    rolled = modelyard_from_host("rollback", "--model-name", MODEL, "--reason", "e2e from the host",
                                 tracking_uri=uri, cwd=tmp_path)  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    after = champion(mlflow)
    print(f"rollback from the host: v{before.version} -> v{after.version}")
    assert after.version == before.tags[f"{TAG}previous_champion"]

    # A user's own script: plain MLflow, no modelyard, no setting but the tracking URI.
    script = (
        "import json, sys, pandas as pd, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        f"model = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        "rows = pd.read_csv('batch.csv').drop(columns=['churn']).head(5)\n"
        "print(json.dumps(pd.Series(model.predict(rows)).tolist()))\n"
    )
    loaded = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", script, uri],
        cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    print(f"pyfunc from the host predicts {loaded.stdout.strip()}")
    predictions = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert len(predictions) == 5 and set(predictions) <= {"yes", "no"}


@pytest.fixture
def load_champion(
    mlflow_forward: PortForward, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], list[Any]]]:
    """Loads the champion from outside the cluster with plain MLflow (no setting), and predicts 5 rows.

    mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI to later subprocesses: both undone after.
    """
    import mlflow as mlflow_module
    from conftest import make_customers

    def predict() -> list[Any]:
        url = f"http://{mlflow_forward.ensure()}"  # anew: helm may have replaced the pod behind it
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow_module.set_tracking_uri(url)
        model = mlflow_module.pyfunc.load_model(f"models:/{MODEL}@champion")
        return list(model.predict(make_customers(rows=5, seed=21).drop(columns=[LABEL])))

    yield predict
    mlflow_module.set_tracking_uri(None)


def secrets(api: client.ApiClient) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    return {
        name: core.read_namespaced_secret(name, NAMESPACE).data
        for name in ("modelyard-minio-root", "modelyard-postgresql")
    }


def test_10_helm_upgrade_keeps_credentials_and_data_and_a_reinstall_works(
    trained: dict[str, Any],
    release: Release,
    api: client.ApiClient,
    load_champion: Callable[[], list[Any]],
) -> None:
    before = secrets(api)
    release.install()
    assert secrets(api) == before, "helm upgrade changed the credentials"
    predictions = load_champion()
    print(f"after helm upgrade the champion predicts {predictions}")
    assert len(predictions) == 5 and set(predictions) <= {"yes", "no"}

    release.uninstall()
    release.install()
    print(release.test())
    assert secrets(api) == before, "a reinstall lost the credentials of the kept volumes"
    assert len(load_champion()) == 5


def serving_rollout(api: client.ApiClient, model: str) -> dict[str, Any]:
    rollouts = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NAMESPACE, "rollouts", label_selector=f"modelyard.dev/model={model}"
    )["items"]
    (rollout,) = rollouts
    return dict(rollout)


def test_11_the_champion_serves_through_traefik_and_every_answer_names_its_version(
    trained: dict[str, Any], release: Release, api: client.ApiClient, mlflow: Any, datasets: dict[str, str]
) -> None:
    from conftest import make_customers

    version = str(champion(mlflow).version)
    release.install(serving_values(datasets["customers"]), wait="legacy")
    kube.wait_until(
        lambda: serving_rollout(api, MODEL).get("status", {}).get("phase") == "Healthy",
        f"the Rollout of {MODEL} Healthy",
        timeout=300,
    )
    entry, forward = traefik_entry()
    rows = json.loads(make_customers(rows=3, seed=11).drop(columns=[LABEL]).to_json(orient="records"))
    traffic = Traffic(entry + invocations_path(MODEL), rows)
    try:
        kube.wait_until(lambda: traffic.send()[0] == 200, "the route answering 200", timeout=60)
        traffic.counts.clear()
        started = time.monotonic()
        for _ in range(SERVED_REQUESTS):
            traffic.send()
        seconds = time.monotonic() - started
        print(f"{SERVED_REQUESTS} requests through Traefik in {seconds:.1f} s: {dict(traffic.counts)}")
        assert traffic.counts == {(200, version): SERVED_REQUESTS}

        status, served, body = traffic.send(json.dumps({"dataframe_records": [{"age": 40}]}).encode())
        print(f"a row without the model's columns: {status} {body[:200]!r}")
        assert (status, served) == (400, version)
        assert b"missing inputs" in body
    finally:
        if forward:
            forward.stop()


def traefik_weights(api: client.ApiClient, model: str) -> dict[str, int]:
    """The weights Argo Rollouts set on the model's TraefikService: {"stable": w, "canary": w}."""
    name = serving_rollout(api, model)["metadata"]["name"]
    weighted = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "traefik.io", "v1alpha1", NAMESPACE, "traefikservices", name
    )
    return {s["name"].rsplit("-", 1)[1]: s["weight"] for s in weighted["spec"]["weighted"]["services"]}


def canary_version(api: client.ApiClient, model: str) -> str:
    """The version the model's Rollout is rolling out (its pod template's annotation)."""
    template = serving_rollout(api, model)["spec"]["template"]["metadata"]
    return str(template.get("annotations", {}).get(MODEL_VERSION_ANNOTATION, ""))


def test_12_a_training_with_promotion_canary_ships_its_version_as_a_5_percent_canary_under_load(
    trained: dict[str, Any], argo: Argo, release: Release, api: client.ApiClient, mlflow: Any,
    datasets: dict[str, str], config_text: str,
) -> None:  # fmt: skip
    from conftest import make_customers

    entry, forward = traefik_entry()
    rows = json.loads(make_customers(rows=3, seed=12).drop(columns=[LABEL]).to_json(orient="records"))
    before = Traffic(entry + invocations_path(MODEL), rows).send()[1]  # what the stable pods serve
    champion_before = str(champion(mlflow).version)
    background = Traffic(entry + invocations_path(MODEL), rows).start()
    started = time.monotonic()
    name = submit_training(argo, datasets["customers"], config_text, promotion="canary")
    try:
        kube.wait_until(
            lambda: traefik_weights(api, MODEL) == {"stable": 95, "canary": 5}, "the 5% step", 600
        )
        candidate = canary_version(api, MODEL)
        sample = Traffic(entry + invocations_path(MODEL), rows)
        kube.wait_until(lambda: sample.send()[1] == candidate, "the canary answering", 30, interval=0)
        sample.counts.clear()
        for _ in range(CANARY_SAMPLE):
            sample.send()
        workflow = argo.wait(name)
    finally:
        counts = background.stop()
        if forward:
            forward.stop()
    share = sample.counts[200, candidate] / CANARY_SAMPLE
    print(f"at the 5% step, {CANARY_SAMPLE} requests: {dict(sample.counts)} (canary {share:.1%})")
    outputs = {p["name"]: p.get("value") for p in workflow["status"].get("outputs", {}).get("parameters", [])}
    print(f"{name} ({workflow['status']['phase']}) in {time.monotonic() - started:.0f} s: {outputs}")
    print(f"steady client during the rollout: {dict(counts)}")
    assert abs(share - 0.05) <= 0.02, sample.counts
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert (outputs["decision"], outputs["version"], outputs["outcome"]) == ("promote", candidate, "promoted")
    assert outputs["champion-version"] == champion_before  # register left champion to the canary
    assert str(champion(mlflow).version) == candidate
    assert champion(mlflow).tags[f"{TAG}previous_champion"] == champion_before
    assert {status for status, _ in counts} == {200}, counts
    assert {version for _, version in counts} == {before, candidate}
    assert traefik_weights(api, MODEL) == {"stable": 100, "canary": 0}

    # The modelyard-deploy WorkflowTemplate, in-cluster with the workflow account's rights: the
    # version already serves every request, so nothing changes.
    again = argo.wait(argo.submit("workflowtemplate/modelyard-deploy", model_name=MODEL, version=candidate))
    outputs = {p["name"]: p.get("value") for p in again["status"].get("outputs", {}).get("parameters", [])}
    assert again["status"]["phase"] == "Succeeded", again["status"].get("message")
    assert (outputs["outcome"], outputs["previous-version"]) == ("unchanged", candidate)


def test_12b_a_canary_that_predicts_otherwise_is_aborted_by_the_analysis_and_the_champion_stays(
    trained: dict[str, Any], early: Early, argo: Argo, release: Release, api: client.ApiClient, mlflow: Any,
    mlflow_forward: PortForward, tmp_path: Path,
) -> None:  # fmt: skip
    from conftest import make_customers

    flipped = argo.wait(early.flipped)
    assert flipped["status"]["phase"] == "Succeeded", flipped["status"].get("message")
    broken = str(parent_run(mlflow, flipped).data.tags[f"{TAG}registered_version"])
    before = str(champion(mlflow).version)
    entry, forward = traefik_entry()
    rows = json.loads(make_customers(rows=3, seed=14).drop(columns=[LABEL]).to_json(orient="records"))
    background = Traffic(entry + invocations_path(MODEL), rows).start()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(kube.kubeconfig())}
    try:
        started = time.monotonic()
        deployed = subprocess.run(
            [str(REPO / ".venv" / "bin" / "modelyard"), "deploy", "--model-name", MODEL, "--version", broken,
             "--namespace", NAMESPACE, "--wait", "--tracking-uri", f"http://{mlflow_forward.ensure()}"],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        sample = Traffic(entry + invocations_path(MODEL), rows)
        kube.wait_until(
            lambda: all(sample.send()[1] == before for _ in range(50)),
            f"v{before} on all traffic",
            30,
            interval=0,
        )
    finally:
        counts = background.stop()
        if forward:
            forward.stop()
    print(
        f"deploy of v{broken} (flipped labels) ended in {seconds:.0f} s: exit {deployed.returncode}, {deployed.stderr.strip()[-400:]}"
    )
    print(f"steady client during it: {dict(counts)}")
    tags = mlflow().get_model_version(MODEL, broken).tags
    print(
        f"v{broken}: analysis {tags.get(f'{TAG}canary_analysis')}: {tags.get(f'{TAG}canary_analysis_details')}"
    )
    assert deployed.returncode == 3, deployed.stderr[-2000:]
    assert tags[f"{TAG}rollout"] == "aborted"
    assert tags[f"{TAG}canary_analysis"] == "fail"
    assert "predicts as the stable version on only" in tags[f"{TAG}canary_analysis_details"]
    assert str(champion(mlflow).version) == before
    # Failed requests, if any, only from the canary before the abort.
    assert all(version == broken for status, version in counts if status != 200), counts
    assert traefik_weights(api, MODEL) == {"stable": 100, "canary": 0}


def test_13_modelyard_rollback_moves_the_alias_and_puts_the_previous_version_on_all_traffic(
    trained: dict[str, Any], release: Release, api: client.ApiClient, mlflow: Any, mlflow_forward: PortForward,
    tmp_path: Path,
) -> None:  # fmt: skip
    from conftest import make_customers

    current = champion(mlflow)
    previous = current.tags[f"{TAG}previous_champion"]
    entry, forward = traefik_entry()
    rows = json.loads(make_customers(rows=3, seed=13).drop(columns=[LABEL]).to_json(orient="records"))
    background = Traffic(entry + invocations_path(MODEL), rows).start()
    sample = Traffic(entry + invocations_path(MODEL), rows)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(kube.kubeconfig())}
    try:
        started = time.monotonic()
        rolled = subprocess.run(
            [str(REPO / ".venv" / "bin" / "modelyard"), "rollback", "--model-name", MODEL, "--namespace", NAMESPACE,
             "--reason", "e2e: canary regret", "--tracking-uri", f"http://{mlflow_forward.ensure()}"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert rolled.returncode == 0, rolled.stderr[-2000:]
        kube.wait_until(
            lambda: all(sample.send()[1] == previous for _ in range(50)),
            f"v{previous} on all traffic",
            60,
            interval=0,
        )
        seconds = time.monotonic() - started
    finally:
        counts = background.stop()
        if forward:
            forward.stop()
    print(f"rollback v{current.version} -> v{previous}: {rolled.stderr.strip()[-300:]}")
    print(
        f"v{previous} on all traffic {seconds:.1f} s after the command started; steady client: {dict(counts)}"
    )
    assert str(champion(mlflow).version) == previous
    assert seconds < 30
    assert {status for status, _ in counts} == {200}, counts


def ready_serving_pods(api: client.ApiClient, model: str, pod_hash: str) -> list[str]:
    """The names of the model's serving pods of one ReplicaSet (its pod template hash) that are ready."""
    labels = f"{MODEL_LABEL}={model},{POD_TEMPLATE_HASH}={pod_hash}"
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=labels).items
    return [
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def test_14_a_helm_upgrade_and_a_serving_pod_killed_under_load_keep_serving(
    trained: dict[str, Any], release: Release, api: client.ApiClient, mlflow: Any, datasets: dict[str, str]
) -> None:
    from conftest import make_customers

    served = str(champion(mlflow).version)
    rollout = serving_rollout(api, MODEL)
    template = rollout["spec"]["template"]
    entry, forward = traefik_entry()
    rows = json.loads(make_customers(rows=3, seed=15).drop(columns=[LABEL]).to_json(orient="records"))
    background = Traffic(entry + invocations_path(MODEL), rows).start()
    try:
        values = serving_values(datasets["customers"])
        values["serving"]["progressDeadlineSeconds"] = 150  # a real change of the Rollout
        release.install(values, wait="legacy")
        upgraded = serving_rollout(api, MODEL)
        after_upgrade = sum(background.counts.values())
        stable, replicas = upgraded["status"]["currentPodHash"], upgraded["spec"]["replicas"]
        victim = ready_serving_pods(api, MODEL, stable)[0]
        client.CoreV1Api(api).delete_namespaced_pod(victim, NAMESPACE, grace_period_seconds=0)
        killed = time.monotonic()
        kube.wait_until(
            lambda: (
                victim not in (ready := ready_serving_pods(api, MODEL, stable)) and len(ready) == replicas
            ),
            "the killed pod replaced and ready",
            240,
        )
        recovered = time.monotonic() - killed
        sample = Traffic(entry + invocations_path(MODEL), rows)
        kube.wait_until(
            lambda: all(sample.send()[:2] == (200, served) for _ in range(50)), "50 answers in a row", 30, 0
        )
    finally:
        counts = background.stop()
        if forward:
            forward.stop()
    total = sum(counts.values())
    failed = total - counts[200, served]
    print(
        f"helm upgrade: {after_upgrade} answers meanwhile; {victim} killed, replaced and ready in {recovered:.1f} s"
    )
    print(f"steady client: {dict(counts)} ({failed} of {total} not a 200 from v{served})")
    # The upgrade changed the Rollout, not what it serves: the version deploy set stays on its template.
    assert upgraded["spec"]["progressDeadlineSeconds"] == 150
    assert upgraded["spec"]["template"] == template
    assert upgraded["status"]["currentPodHash"] == rollout["status"]["currentPodHash"]
    # A killed pod may fail the requests it held and those sent before its endpoint went: a few.
    assert failed <= 5, counts
