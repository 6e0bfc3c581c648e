"""One served vitrine stack per test session, shared by every e2e test.

It is the real thing: its own PostgreSQL database (on the machine's server) loaded with the real fashion feed
from ../shared/data, a Redis server of its own (a real redis-server on a spare port, so a test can stop and
restart it without touching the machine's Redis), the offline MiniLM model imported into a private BentoML
model store, an index built by `vitrine index build`, and `bentoml serve service:Vitrine` with two API workers.

With VITRINE_E2E_TOPOLOGY=split (`make test-split`) the same stack is served as the Kubernetes pods run it:
`vitrine topology split` (commands/topology.py), every service its own server on a TCP port, two index and
two API replicas behind round-robin balancers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import (
    API_KEY,
    FASHION_FEED,
    free_port,
    run_cli,
    serve,
    serve_split,
    stop_process_group,
    wait_until,
)

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
OPERATOR_KEY = "e2e-operator-key-91c2"  # OPERATOR_KEYS: the operator routes (/cache/stats, /performance, erase)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that flood or break the shared stack (fuzzing, chaos) run after the rest, in their file order."""
    items.sort(key=lambda item: item.get_closest_marker("shared_stack_last") is not None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, None]:
    """A failed test that used the stack reports the stack's warnings and errors from its serve log: on CI
    that log is gone with the run, and a flaky failure is otherwise hard to explain."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and call.when == "call" and isinstance(stack, Stack):
        noteworthy = [line for line in stack.log_tail(2000).splitlines() if "WARNING" in line or "ERROR" in line]
        report.sections.append(("stack log: warnings and errors, last 40", "\n".join(noteworthy[-40:])))


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


SPLIT = os.environ.get("VITRINE_E2E_TOPOLOGY") == "split"  # `make test-split`: every service its own server


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
        # The index a service of its own (the default, and Kubernetes' shape); the image-search stack runs it
        # inside each API worker (INDEX_IN_PROCESS=true): both topologies are served.
        "INDEX_IN_PROCESS": "false",
        "API_REQUIRE_KEY": "true",
        "API_KEYS": f"another-key,{API_KEY}",
        "OPERATOR_KEYS": OPERATOR_KEY,
        "SLOW_QUERY_MS": "50",
        "CATALOG_IMAGE_ROOTS": str(FASHION_FEED.parent / "images"),  # the storefront serves the feed's photos
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
    stack.process = serve_split(port=port, env=env, log_path=log_path) if SPLIT else serve(
        "service:Vitrine", port=port, env=env, log_path=log_path
    )
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
