"""Real servers for the integration tests and the benchmark: an S3 store, PostgreSQL, `mlflow server`.

Every server binds to 127.0.0.1 on a free port, logs to a file in its own directory and is stopped by
`stop()` (SIGTERM, then SIGKILL). Nothing here is pytest-specific, so the benchmark reuses it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "mlflow"
DATASETS = "datasets"
# Static credentials of the S3 server: the MLflow server's (full access) and a read-only dataset user.
SERVER_KEY, SERVER_SECRET = "mlflow-server", "mlflow-server-secret"
DATASET_KEY, DATASET_SECRET = "dataset-reader", "dataset-reader-secret"
# What a pod has and the client must never carry: the artifact store's credentials.
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
# An image has compiled bytecode; without it every process compiles MLflow anew (~30 s per start).
NO_CACHE = "PYTHONDONTWRITEBYTECODE"


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != NO_CACHE}


class Missing(RuntimeError):
    """A tool the stack needs is not installed; the message says how to get it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Process:
    """A server process in its own session, so stopping it stops its workers too."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=base_env)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        self.proc = None


# --- S3: MinIO, the server users deploy (scripts/build-minio.sh builds it from source) -----------------


def s3_binary() -> str:
    """The MinIO server: .tools/bin/minio (built on first use when Go is there), or one on PATH."""
    built = REPO / ".tools" / "bin" / "minio"
    if not built.exists() and shutil.which("go"):
        subprocess.run(["bash", str(REPO / "scripts" / "build-minio.sh")], check=True, timeout=1800)
    for candidate in (str(built), shutil.which("minio")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise Missing("no MinIO server: run scripts/build-minio.sh (builds it with Go), or put `minio` on PATH")


@dataclass
class S3Server:
    root: Path
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        env = base_env() | {"MINIO_ROOT_USER": SERVER_KEY, "MINIO_ROOT_PASSWORD": SERVER_SECRET}
        argv = [s3_binary(), "server", str(self.root / "data"), "--address", f"127.0.0.1:{self.port}",
                "--console-address", f"127.0.0.1:{free_port()}"]  # fmt: skip
        self.process = Process("s3 (minio)", argv, self.root / "s3.log", env)
        self.process.start()
        wait_for(self._ready, f"S3 server {self.endpoint}", 60, self.process.log)
        return self

    def _ready(self) -> bool:
        from minio.error import S3Error, ServerError
        from urllib3.exceptions import HTTPError

        assert self.process is not None
        if not self.process.running:
            raise RuntimeError(f"S3 server exited:\n{self.process.log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            client = self.client()
            for bucket in (BUCKET, DATASETS):
                if not client.bucket_exists(bucket):
                    client.make_bucket(bucket)
            _minio_dataset_user(self)
            return True
        except (OSError, HTTPError, S3Error, ServerError):  # not up yet: refused, 503 while it initialises
            return False

    def client(self, key: str = SERVER_KEY, secret: str = SERVER_SECRET):  # -> minio.Minio
        from minio import Minio

        return Minio(endpoint=f"127.0.0.1:{self.port}", access_key=key, secret_key=secret, secure=False)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process:
            self.process.stop(sig)

    def server_env(self) -> dict[str, str]:
        """What the MLflow server's pod gets: the endpoint and its credentials."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": SERVER_KEY,
            "AWS_SECRET_ACCESS_KEY": SERVER_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def dataset_env(self) -> dict[str, str]:
        """The optional dataset Secret a training pod gets: read-only keys for the datasets bucket."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": DATASET_KEY,
            "AWS_SECRET_ACCESS_KEY": DATASET_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


# The chart's modelyard-datasets-ro policy (minio-setup-configmap.yaml): list and read the datasets bucket.
DATASETS_READ_ONLY: Final = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{DATASETS}"],
        },
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{DATASETS}/*"]},
    ],
}


def _minio_dataset_user(s3: S3Server) -> None:
    """MinIO: the read-only dataset user, through the admin API of the `minio` package."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    credentials = StaticProvider(SERVER_KEY, SERVER_SECRET)
    admin = MinioAdmin(endpoint=f"127.0.0.1:{s3.port}", credentials=credentials, secure=False)
    admin.user_add(DATASET_KEY, DATASET_SECRET)
    admin.policy_add("datasets-ro", policy=DATASETS_READ_ONLY)
    admin.policy_set("datasets-ro", user=DATASET_KEY)


# --- PostgreSQL: a throwaway cluster from Debian's server binaries -----------------------------------


def postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if found := shutil.which("pg_ctl"):
        candidates.insert(0, Path(found).resolve())
    for pg_ctl in candidates:
        if (pg_ctl.parent / "initdb").is_file():
            return pg_ctl.parent
    raise Missing("PostgreSQL server binaries not found: apt-get install postgresql")


@dataclass
class Postgres:
    root: Path
    port: int = field(default_factory=free_port)
    database: str = "mlflow"

    @property
    def data(self) -> Path:
        return self.root / "pgdata"

    def _as_owner(self) -> list[str]:
        # initdb and postgres refuse to run as root: run them as the packaged `postgres` user.
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Missing(
                "no `postgres` user to run PostgreSQL as root: apt-get install postgresql"
            ) from None
        return ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [*self._as_owner(), *argv], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def start(self) -> Postgres:
        bindir = postgres_bin()
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data.exists():
            self._run(str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        self.create_database(self.database)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def connect(self, database: str | None = None):  # -> psycopg2 connection
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database or self.database
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> None:
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def uri(self, database: str | None = None) -> str:
        # psycopg2 named: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database or self.database}"


# --- MLflow tracking server with proxied artifacts ---------------------------------------------------


@dataclass
class MlflowServer:
    root: Path
    backend_uri: str
    s3: S3Server
    port: int = field(default_factory=free_port)
    workers: int = 1
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        mlflow = BIN / "mlflow"
        if not mlflow.is_file():
            raise Missing("`mlflow` not installed in this environment: pip install -e '.[dev]'")
        for module, package in (("boto3", "boto3"), ("psycopg2", "psycopg2-binary")):
            if not _importable(module):
                raise Missing(f"the MLflow server needs {module}: pip install {package}")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            str(mlflow), "server",
            "--app-name", "modelyard",  # as images/mlflow runs it
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", f"s3://{BUCKET}",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip
        env = base_env() | self.s3.server_env() | {"MLFLOW_DISABLE_TELEMETRY": "true"}
        self.process = Process("mlflow server", argv, self.root / "mlflow-server.log", env)
        self.process.start()
        wait_for(self._ready, f"MLflow server {self.url}", 120, self.process.log)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            raise RuntimeError(f"MLflow server exited:\n{self.process.log.read_text()[-3000:]}")
        return http_ok(f"{self.url}/health")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process:
            self.process.stop(sig)

    def client_env(self, home: Path, **extra: str) -> dict[str, str]:
        """A training pod's environment: the tracking URI and nothing that reaches S3 directly."""
        env = {k: v for k, v in base_env().items() if k not in S3_ENV and not k.startswith("MLFLOW_")}
        return (
            env
            | {
                "MLFLOW_TRACKING_URI": self.url,
                "HOME": str(home),  # no ~/.aws, no ~/.mlflow from the machine
                "MODELYARD_WORKFLOW_NAME": "integration",
            }
            | extra
        )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@dataclass
class Stack:
    """S3 + PostgreSQL + MLflow server, started in order and stopped in reverse."""

    root: Path
    s3: S3Server | None = None
    postgres: Postgres | None = None
    mlflow: MlflowServer | None = None

    def start(self) -> Stack:
        try:
            self.s3 = S3Server(self.root / "s3")
            self.s3.start()
            # Not under the test's temp dir: as root, the cluster belongs to `postgres`, who must reach it.
            self.postgres = Postgres(Path(tempfile.mkdtemp(prefix="modelyard-pg-")))
            self.postgres.start()
            self.mlflow = MlflowServer(self.root / "mlflow", self.postgres.uri(), self.s3).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.mlflow, self.postgres, self.s3):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others
                    print(f"stopping {type(server).__name__}: {exc}", file=sys.stderr)
        if self.postgres is not None:
            shutil.rmtree(self.postgres.root, ignore_errors=True)


def wait_blocked(
    postgres: Postgres,
    database: str,
    count: int,
    procs: dict[str, subprocess.Popen[str]],
    timeout: float = 180,
) -> None:
    """Until `count` server sessions wait on a lock the test holds (or on a row a blocked one holds).

    Raises AssertionError when a client exits first: it never reached the locked table.
    """
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s"
    watcher = postgres.connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with watcher.cursor() as cur:
                cur.execute(query, (database,))
                if cur.fetchone()[0] >= count:
                    return
            for name, proc in procs.items():
                if proc.poll() is not None:
                    _, err = proc.communicate()
                    raise AssertionError(f"{name} exited {proc.returncode} before blocking:\n{err[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} clients blocked after {timeout:.0f} s")
    finally:
        watcher.close()


def modelyard(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh process, with exactly the given environment."""
    return subprocess.run(
        [str(BIN / "modelyard"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
