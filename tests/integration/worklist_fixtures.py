"""Fixtures for the worklist tests: real ``arscore web`` processes and a real PostgreSQL.

PostgreSQL comes from Debian's ``postgresql`` package (``initdb``/``pg_ctl``), started once
per session in a temporary directory on a free port and stopped at the end; each test gets
its own database. As root (CI), the server runs as the ``postgres`` user, since PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streams.broker import free_port


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth on 127.0.0.1 only)."""

    root: Path
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"wl_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextmanager
def temporary_postgres(durable: bool = False) -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster in a temporary directory; stopped and removed on exit.

    Tests run it without fsync (speed; a test's data outlives no power cut);
    bench/worklist_throughput.py runs it ``durable`` so the figures are honest.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql "
                           "(.ci/run installs it)")
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        pwd.getpwnam(run_as)  # the Debian package creates this user
    root = Path(tempfile.mkdtemp(prefix="arscore-pg-"))
    data = root / "data"
    if run_as:
        shutil.chown(root, run_as)
    port = free_port()
    subprocess.run(_as_user(run_as, [initdb, "-D", str(data), "-U", "arscore", "--auth=trust",
                                     "--no-sync", "-E", "UTF8", "--locale=C"]),
                   check=True, capture_output=True)
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            "-c max_connections=50" + ("" if durable else " -c fsync=off -c full_page_writes=off"))
    try:
        subprocess.run(_as_user(run_as, [pg_ctl, "-D", str(data), "-o", opts, "-l",
                                         str(root / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        yield PostgresServer(root, port, "arscore")
    finally:
        subprocess.run(_as_user(run_as, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def missing(reason: str) -> None:
    """A system package the worklist tests need is not installed: in CI that is a failure
    (.ci/run installs it); on a developer's machine the tests are skipped, saying what to
    install, so that `make test` stays usable without root."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not _pg_bin("initdb") or not _pg_bin("pg_ctl"):
        missing("PostgreSQL server binaries not found: apt-get install postgresql "
                "(.ci/run installs it)")
    with temporary_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each worklist test runs against a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'worklist.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@dataclass
class Web:
    """One ``arscore web`` process (restartable) and a tiny HTTP client for its API."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    token: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Web:
        with open(self.log, "ab") as log:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "web", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.procs[-1].poll() is not None:
                raise AssertionError(f"arscore web exited: {self.log.read_text()[-2000:]}")
            try:
                self.get("/api/health")
                return self
            except (OSError, AssertionError):
                time.sleep(0.3)
        raise AssertionError("arscore web never answered /api/health")

    def request(self, path: str, token: str | None = None) -> tuple[int, Any]:
        """(status, parsed JSON or text) without raising on 4xx/5xx."""
        headers = {}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", "replace")

    def get(self, path: str) -> Any:
        status, body = self.request(path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body}")
        return body

    def worklist(self, limit: int = 500) -> list[dict[str, Any]]:
        """Every row of the worklist, following the cursor."""
        rows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.get(f"/api/worklist?limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
            rows.extend(page["items"])
            if not page["next_cursor"]:
                return rows
            cursor = page["next_cursor"]

    def kill(self) -> None:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM every live process; returns the newest one's exit code."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self.procs[-1].returncode if self.procs else None


@pytest.fixture
def make_web(tmp_path: Path) -> Iterator[Any]:
    """``make_web(worker_env, database_url, **env)`` -> a not yet started :class:`Web`."""
    webs: list[Web] = []

    def make(base_env: dict[str, str], database_url: str, **extra: str) -> Web:
        env = {**base_env, "ARSCORE_DATABASE_URL": database_url,
               # shared/BROKER.md deviation 3: a killed member delays the next join by
               # the session (and rebalance) timeout on Tansu
               "ARSCORE_SESSION_TIMEOUT": "6", "ARSCORE_REBALANCE_TIMEOUT": "8",
               **extra}
        web = Web(env, tmp_path / f"web{len(webs)}.log", token=extra.get("ARSCORE_WEB_TOKEN", ""))
        webs.append(web)
        return web

    yield make
    for web in webs:
        web.stop()


def wait_for(check: Any, what: str, timeout: float = 60.0, every: float = 0.5) -> Any:
    """Poll ``check()`` until it returns a truthy value; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"never happened: {what} (last: {str(last)[:500]})")


def latest_per_customer(records: list[tuple[bytes | None, bytes]]) -> dict[str, dict[str, Any]]:
    """The compacted view of a score topic: the last record per customer id that the
    published contract (score.schema.json, checked by jsonschema) accepts."""
    from jsonschema import Draft202012Validator, FormatChecker

    from schemas.codec import DecodeError, loads
    from schemas.contracts import load_schema

    validator = Draft202012Validator(load_schema("score"), format_checker=FormatChecker())
    latest: dict[str, dict[str, Any]] = {}
    for _key, value in records:
        try:
            doc = loads(value)
        except DecodeError:
            continue
        if validator.is_valid(doc):
            latest[doc["customer_id"]] = doc
    return latest
