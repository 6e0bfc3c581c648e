"""One served vitrine stack per test session, shared by every e2e test.

It is the real thing: its own PostgreSQL database (on the machine's server) loaded with the real fashion feed
from ../shared/data, a Redis server of its own (a real redis-server on a spare port, so a test can stop and
restart it without touching the machine's Redis), the offline MiniLM model imported into a private BentoML
model store, an index built by `vitrine index build`, and `bentoml serve service:Vitrine` with two API workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_FEED = SHARED_DATA / "fashion-product-images" / "awin-feed.csv"
BIN = Path(sys.executable).parent
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
API_KEY = "e2e-test-key-7f3a"
OPERATOR_KEY = "e2e-operator-key-91c2"  # OPERATOR_KEYS: the operator routes (/cache/stats, /performance, erase)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that flood or break the shared stack (fuzzing, chaos) run after the rest, in their file order."""
    items.sort(key=lambda item: item.get_closest_marker("shared_stack_last") is not None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, *, timeout: float, interval: float = 0.25, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    completed = subprocess.run(
        [str(BIN / "vitrine"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise RuntimeError(f"vitrine {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class RedisServer:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    database_url: str
    redis: RedisServer
    index_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ready_before_index: dict[str, object] = field(default_factory=dict)
    client: httpx.Client = field(init=False)
    operator: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30, headers={"X-API-Key": API_KEY})
        self.operator = httpx.Client(base_url=self.url, timeout=30, headers={"X-API-Key": OPERATOR_KEY})

    def sql(self, query: str, *args: object) -> list[dict[str, object]]:
        """Run one query against the stack's database (to check what was really stored)."""

        async def run() -> list[dict[str, object]]:
            import asyncpg

            conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return [dict(row) for row in await conn.fetch(query, *args)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def redis_client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.redis.url)

    def wait_for_index_version(self, previous: str | None, timeout: float = 60) -> str:
        def changed() -> str | None:
            version = self.get("/status").json()["index"].get("version")
            return version if version and version != previous else None

        return str(wait_until(changed, timeout=timeout, interval=0.5, what="a new index version"))

    def post(self, path: str, json: object) -> httpx.Response:
        return self.client.post(path, json=json)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def metrics(self) -> str:
        return self.client.get("/metrics").text

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _serve(stack_env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [str(BIN / "bentoml"), "serve", "service:Vitrine", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO,
        env=stack_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the whole process group (API workers and runners) can be stopped together
    )


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with_kill = getattr(os, "killpg", None)
        if with_kill is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def embedded_stack(home: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """Serve an already prepared embedded stack (SQLite, in-process cache) from `home`; a client to it."""
    port = free_port()
    process = _serve(env, port, home / "serve.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_until(lambda: client.get("/ready").status_code == 200, timeout=240, interval=1, what=f"{home} /ready")
        yield client
    finally:
        client.close()
        stop_process_group(process)
        shutil.rmtree(home, ignore_errors=True)


def embedded_env(home: Path) -> dict[str, str]:
    """The environment of a private embedded-default stack: no DATABASE_URL, REDIS_URL or API keys."""
    unset = {"DATABASE_URL", "REDIS_URL", "FAISS_INDEX_PATH", "API_REQUIRE_KEY", "API_KEYS"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(
        {
            "VITRINE_DATA_DIR": str(home / "var"),
            "BENTOML_HOME": str(home / "bentoml"),
            "HF_HUB_OFFLINE": "1",
            "BENTOML_DO_NOT_TRACK": "True",
        }
    )
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not FASHION_FEED.exists():
        pytest.fail(f"the fashion catalog is missing: {FASHION_FEED} (../shared/data beside the repository)")
    home = tmp_path_factory.mktemp("stack")
    db_name = f"vitrine_e2e_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{db_name}"'))
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
    redis = RedisServer(port=free_port(), workdir=home)
    redis.start()

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "BENTOML_HOME": str(home / "bentoml"),
        "FAISS_INDEX_PATH": str(home / "index"),
        "VITRINE_DATA_DIR": str(home / "var"),
        "API_WORKERS": "2",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "BENTOML_DO_NOT_TRACK": "True",
        "INDEX_RELOAD_INTERVAL_S": "1",
        "API_REQUIRE_KEY": "true",
        "API_KEYS": f"another-key,{API_KEY}",
        "OPERATOR_KEYS": OPERATOR_KEY,
        "SLOW_QUERY_MS": "50",
        "PYTHONUNBUFFERED": "1",
    }
    run_cli("db", "upgrade", env=env)
    run_cli("catalog", "import", str(FASHION_FEED), env=env)
    run_cli("model", "import", "minilm", env=env)

    port = free_port()
    log_path = home / "serve.log"
    stack = Stack(
        url=f"http://127.0.0.1:{port}",
        env=env,
        database_url=database_url,
        redis=redis,
        index_path=home / "index",
        log_path=log_path,
    )
    stack.process = _serve(env, port, log_path)
    try:
        # Served before any index exists: /ready must say no (recorded for test_operator_endpoints), until
        # `vitrine index build` writes one and the index runner picks it up without a restart.
        wait_until(lambda: stack.get("/health").status_code == 200, timeout=240, interval=1, what="/health")
        not_ready = stack.get("/ready")
        stack.ready_before_index = {"status_code": not_ready.status_code, **not_ready.json()}
        run_cli("index", "build", env=env)
        wait_until(lambda: stack.get("/ready").status_code == 200, timeout=240, interval=1, what="/ready")
    except TimeoutError:
        stop_process_group(stack.process)
        raise RuntimeError(f"the stack did not become ready; serve log:\n{stack.log_tail(120)}") from None
    try:
        yield stack
    finally:
        stack.client.close()
        stack.operator.close()
        stop_process_group(stack.process)
        redis.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        shutil.rmtree(home, ignore_errors=True)
