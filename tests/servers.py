"""Real servers on loopback for the team-setup tests: a throw-away PostgreSQL
cluster (Debian's ``postgresql`` package), an S3 endpoint (moto's server, from
PyPI) and an ``mlflow server`` on top of both.

Nothing here mocks a client library: the tests talk to these servers with
psycopg, boto3, MLflow, Optuna and DVC exactly as a team would talk to its own.

When a server's binaries are missing the tests skip with the reason, except in
CI (``CI=true`` or ``MELODANCE_REQUIRE_SHARED=1``), where they fail: CI's
``.ci/run`` installs them, so a missing one there is a broken setup.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
S3_KEYS = {"AWS_ACCESS_KEY_ID": "melodance-test", "AWS_SECRET_ACCESS_KEY": "melodance-test",
           "AWS_DEFAULT_REGION": "us-east-1"}
"""Credentials for the test S3 endpoint (moto accepts any; boto3 insists on some)."""


def required() -> bool:
    """CI must run these tests, not skip them."""
    return (os.environ.get("CI", "").lower() in ("1", "true", "yes")
            or os.environ.get("MELODANCE_REQUIRE_SHARED") == "1")


def missing(reason: str) -> None:
    """Skip on a developer's machine, fail in CI."""
    if required():
        pytest.fail(f"{reason} (CI=true or MELODANCE_REQUIRE_SHARED=1: .ci/run should have "
                    "installed it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready, what: str, timeout_s: float, log: Path | None = None,
               proc: subprocess.Popen | None = None) -> None:
    """Poll ``ready()`` until it is true; fail with the server's log otherwise."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.3)
    tail = log.read_text()[-4000:] if log and log.is_file() else ""
    state = f"exited with {proc.returncode}" if proc is not None and proc.poll() is not None \
        else f"not ready after {timeout_s:.0f} s"
    raise RuntimeError(f"{what} {state}; log {log}:\n{tail}")


def http_ok(url: str, timeout_s: float = 60) -> bool:
    # Generous: a server's first page can take seconds on a machine busy with other tests
    # (CI failed once on a 2 s limit), and a refused connection still fails at once.
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.status == 200


def stop(proc: subprocess.Popen, timeout_s: float = 5) -> None:
    """Stop a server started with ``start_new_session=True`` and the workers it forked."""
    if proc.poll() is not None:
        return
    # The whole group: `mlflow server` is a launcher whose uvicorn child would
    # otherwise hold the port (and the parent would wait for it).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ----------------------------------------------------------------------------- PostgreSQL

def pg_bindir() -> Path | None:
    """Newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl (Debian's layout)."""
    dirs = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    dirs = [d for d in dirs if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    if dirs:
        return max(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class Postgres:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:``port``."""

    bindir: Path
    root: Path
    port: int
    user: str | None  # the system user the server runs as (postgres refuses root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        out = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120,
                             cwd=self.root)
        if out.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n"
                               f"{out.stderr}\n{tail}")
        return out

    def start(self) -> None:
        # trust on loopback only: a throw-away cluster that lives as long as the tests.
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "postgres.log"), "-o", opts, "-w", "-t", "60", "start")

    def create_database(self, name: str) -> str:
        import psycopg

        # autocommit: CREATE DATABASE refuses to run inside a transaction.
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """Start a throw-away cluster; skip (or fail in CI) when PostgreSQL is not installed."""
    bindir = pg_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                "`apt-get install postgresql`")
    try:
        import psycopg  # noqa: F401 - the driver SQLAlchemy uses for postgresql:// URLs
    except ImportError:
        missing("psycopg (PostgreSQL driver) not installed: `pip install -e '.[team]'`")
    user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; Debian's package creates this user.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no 'postgres' system user to run the server")
        if shutil.which("runuser") is None:
            missing("running as root and `runuser` (util-linux) is missing")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="melodance-pg-"))
    if user:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    pg = Postgres(bindir, root, free_port(), user)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- S3 (moto)

@dataclass
class S3:
    endpoint: str
    bucket: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_keys())

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                         Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _boto_keys() -> dict:
    return {"aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_KEYS["AWS_DEFAULT_REGION"]}


@contextlib.contextmanager
def s3_server(workdir: Path, bucket: str = "melodance") -> Iterator[S3]:
    """moto's S3 server on loopback with one empty bucket."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as e:
        missing(f"S3 test endpoint unavailable ({e}): `pip install -e '.[team]'`")
    port = free_port()
    log = workdir / "moto.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **S3_KEYS})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(endpoint + "/moto-api/"), "moto S3 server", 60, log, proc)
        s3 = S3(endpoint, bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        stop(proc)


# ----------------------------------------------------------------------------- MLflow server

@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: str, s3: S3, workdir: Path) -> Iterator[str]:
    """``mlflow server`` with a PostgreSQL backend store that proxies artifacts to S3.

    Clients need only the tracking URI it returns: artifacts travel through the
    server (``--artifacts-destination``), so only the server holds S3 credentials.
    """
    port = free_port()
    log = workdir / "mlflow-server.log"
    env = {**os.environ, **S3_KEYS, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", backend_uri,
             "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=workdir)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(uri + "/health"), "mlflow server", 180, log, proc)
        yield uri
    finally:
        stop(proc)
