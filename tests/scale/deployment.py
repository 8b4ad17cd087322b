"""A real ml-connector deployment in subprocesses: its own database, broker, web process and qcluster(s).

The test process cannot lend its pytest-django database to other processes (SQLite's is in memory,
PostgreSQL's is made per xdist worker), so a deployment gets a database of its own: a SQLite file in
the test's tmp_path, or a fresh PostgreSQL database created and dropped on the server DATABASE_URL
names. On Redis it uses a database number other than the suite's (so its rate budgets and queue can
never meet the suite's) and deletes only the keys it made. Every process logs to a file in tmp_path;
`tails()` shows the end of each when something fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .driver import ANSWER

ROOT = Path(__file__).resolve().parents[2]
# Never inherited from the test process: its settings module, database, broker and cluster knobs.
INHERITED_PREFIXES = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "Q_", "ML_CONNECTOR_", "PUBLIC_BASE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_server_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


class PostgresDatabase:
    """A database of our own on the server of DATABASE_URL, named uniquely, dropped at the end."""

    def __init__(self, server_url: str):
        parts = urlsplit(server_url)
        self.name = f"mlc_scale_{uuid.uuid4().hex[:10]}"
        self.url = urlunsplit(parts._replace(path="/" + self.name))
        self._admin = urlunsplit(parts._replace(path="/postgres")).replace("postgres://", "postgresql://", 1)

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> None:
        self._execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class SqliteDatabase:
    def __init__(self, directory: Path):
        self.url = f"sqlite:///{directory / 'ml-connector.sqlite3'}"

    def create(self) -> None:
        return None

    def drop(self) -> None:
        return None


def scale_redis_url() -> str | None:
    """REDIS_URL with another database number than the suite's (its queue and budgets stay apart)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return None
    parts = urlsplit(url)
    number = int((parts.path or "/0").strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + 8) % 16}"))


@dataclass
class Deployment:
    """Web process + qcluster(s) + the driver, all on one database and broker."""

    workdir: Path
    database: Any
    redis_url: str | None
    workers: int
    cluster_name: str = field(default_factory=lambda: f"mlc-scale-{uuid.uuid4().hex[:8]}")
    web_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    budget_keys: tuple[str, ...] = ()  # the shared rate budgets of the tenant's credentials

    def __post_init__(self) -> None:
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
        env.update(
            DJANGO_SETTINGS_MODULE="connector_site.settings",
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(40),
            FERNET_KEYS=secrets.token_urlsafe(32),
            ML_CONNECTOR_ENV_FILE="",
            ML_CONNECTOR_VAR_DIR=str(self.workdir / "var"),
            DATABASE_URL=self.database.url,
            REDIS_URL=self.redis_url or "",
            Q_WORKERS=str(self.workers),
            Q_CLUSTER_NAME=self.cluster_name,
            PUBLIC_BASE_URL=self.web_url,
            LOG_LEVEL="INFO",
            # A worker may wait this long for another worker's release to leave the shared Acumatica
            # session before its task is rescheduled (the default 5 s would reschedule most of them).
            HTTP_MAX_INLINE_WAIT="20",
            PYTHONUNBUFFERED="1",
            PYTHONFAULTHANDLER="1",  # a hung process asked for its stacks (dump_stacks) prints them
        )
        self.env = env

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # ---- one-shot commands -------------------------------------------------------------------
    def run(self, *args: str, timeout: float = 120) -> str:
        """A command in the deployment's environment; its output is logged, a failure raises."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with open(self.logs / "commands.log", "a") as log:
            log.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def manage(self, *args: str, timeout: float = 120) -> str:
        return self.run("manage.py", *args, timeout=timeout)

    def driver(self, command: str, arg: Any = None, timeout: float = 120) -> Any:
        """Ask the deployment's driver process (tests/scale/driver.py) one thing; its JSON answer."""
        proc = self.processes.get("driver")
        if proc is None:
            proc = self.start("driver", "-m", "tests.scale.driver", "serve", pipes=True)
        proc.stdin.write(json.dumps({"command": command, "arg": arg}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"the driver did not answer {command} within {timeout:.0f}s")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the driver exited (code {proc.poll()}) during {command}")
            if line.startswith(ANSWER):
                answer = json.loads(line[len(ANSWER) :])
                if not answer["ok_call"]:
                    raise RuntimeError(f"driver {command}: {answer['error']}")
                return answer["value"]

    # ---- long-running processes ----------------------------------------------------------------
    def start(self, name: str, *args: str, pipes: bool = False) -> subprocess.Popen:
        """A long-running process; its output goes to logs/<name>.log (stdout is a pipe if `pipes`)."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else log,
            stderr=log if pipes else subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() reaches the cluster's children
        )
        proc.log_file = log
        self.processes[name] = proc
        return proc

    def start_web(self) -> None:
        self.start(
            "web",
            "-m",
            "waitress",
            f"--listen=127.0.0.1:{self.web_port}",
            "--threads=8",
            "connector_site.wsgi:application",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.web_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the web process did not start listening")

    def start_clusters(self, count: int) -> None:
        for n in range(count):
            self.start(f"qcluster-{n + 1}", "manage.py", "qcluster")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(self.driver("clusters")) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{count} cluster(s) did not report running")

    def stop(self, name: str, grace: float = 30) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the driver ends at the end of its input
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        # whatever is left of its process group (the cluster's sentinel and workers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.log_file.close()

    def stop_all(self) -> None:
        order = {"driver": 2, "web": 1}  # clusters first, then the web process, the driver last
        for name in sorted(self.processes, key=lambda n: order.get(n, 0)):
            self.stop(name)

    def dump_stacks(self) -> None:
        """Every process of ours prints its Python stacks to its log and dies (a hang's diagnosis)."""
        roots = [p.pid for p in self.processes.values()]
        for pid in sorted(all_pids()):
            if pid != os.getpid() and any(is_descendant(pid, root) for root in roots):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGABRT)
        time.sleep(1)

    def tails(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()
            out.append(f"---- {path.name} (last {lines} of {len(text)} lines)")
            out.extend(text[-lines:])
        return "\n".join(out)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    # ---- broker keys we own ------------------------------------------------------------------------
    def forget_broker_keys(self) -> None:
        """Delete this deployment's queue, cluster stats and rate budgets (never FLUSHDB)."""
        if not self.redis_url:
            return
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            doomed = list(client.scan_iter(f"django_q:{self.cluster_name}:*", count=500))
            for key in self.budget_keys:
                doomed += [key, f"{key}:leases", f"{key}:writes", f"{key}:holders"]
            if doomed:
                client.delete(*doomed)
        finally:
            client.close()


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def is_descendant(pid: int, ancestor: int) -> bool:
    """True when `pid` is `ancestor` or runs below it (we only ever signal our own processes)."""
    for _ in range(10):
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False
