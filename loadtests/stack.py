"""Private stacks for the load runs, on 127.0.0.1 only: database, Redis, models, indexes, served processes.

State that is slow to make and safe to keep lives under var/loadtest/ and is reused by later runs:

    PostgreSQL database `vitrine_loadtest` (on the machine's server): the fashion feed from ../shared/data plus
        DEMO_COUNT demo products (ids from 900,000,000), so >= 100k products; interactions and profiles are
        emptied at the start of every run, so every run starts from the same state
    var/loadtest/bentoml     a BentoML model store with ViT-B-32 (random weights: the real model's speed) and
                             the offline MiniLM
    var/loadtest/index-*     one index per model (loadtests/prepare_index.py)

Made fresh for every stack: a redis-server on a spare port (empty, no persistence) and the served processes
(`bentoml serve service:Vitrine`, or the baseline under uvicorn), each in its own process group so that
stopping it stops all of its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from runners import serving

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATE = REPO / "var" / "loadtest"
FEED = REPO.parent / "shared" / "data" / "fashion-product-images" / "awin-feed.csv"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "vitrine_loadtest"
DEMO_COUNT = 99_000
DEMO_FIRST_ID = 900_000_000


@dataclass(frozen=True)
class Model:
    key: str  # "vit" | "minilm"
    label: str
    import_args: tuple[str, ...]

    @property
    def index_path(self) -> Path:
        return STATE / f"index-{self.key}"


MODELS = {
    "vit": Model("vit", "ViT-B-32 text tower (open_clip, random weights)", ("open-clip", "ViT-B-32", "--random-init")),
    "minilm": Model("minilm", "all-MiniLM-L6-v2 (offline)", ("minilm",)),
}


def database_url() -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_NAME}"


def base_env() -> dict[str, str]:
    """The environment every vitrine command and service of a load run gets."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Settings the caller may have exported must not leak into the stack: it is configured here only.
        if not key.startswith(("API_", "ENCODER_", "INDEX_", "DB_", "CACHE_", "REDIS_", "ML_", "FAISS_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url(),
            "BENTOML_HOME": str(STATE / "bentoml"),
            "VITRINE_DATA_DIR": str(STATE / "data"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "BENTOML_DO_NOT_TRACK": "True",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def model_env(model: Model, tag: str) -> dict[str, str]:
    return {**base_env(), "ML_MODEL_VERSION": tag.split(":", 1)[1], "FAISS_INDEX_PATH": str(model.index_path)}


def vitrine(*args: str, env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(
        [str(BIN / "vitrine"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"vitrine {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


async def _sql(dsn: str, statement: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


def sql(statement: str, *args: Any, database: str = DB_NAME) -> list[Any]:
    return asyncio.run(_sql(f"{PG_SERVER}/{database}", statement, *args))


# --- preparation (cached under var/loadtest) ------------------------------------------------------------------


def feed_rows() -> int:
    import csv

    with FEED.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def ensure_database(log: Callable[[str], None]) -> dict[str, int]:
    """The catalog database with the fashion feed and the demo padding; returns its product counts."""
    if not FEED.exists():
        raise SystemExit(f"the fashion catalog is missing: {FEED} (../shared/data beside the repository)")
    if not sql("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME, database="postgres"):
        log(f"creating database {DB_NAME}")
        sql(f'CREATE DATABASE "{DB_NAME}"', database="postgres")
    env = base_env()
    vitrine("db", "upgrade", env=env)
    counts = product_counts()
    if counts["real"] < feed_rows() - 10:  # a few feed rows may be rejected; the import says which
        log("importing the fashion feed")
        vitrine("catalog", "import", str(FEED), env=env)
    if counts["demo"] != DEMO_COUNT:
        log(f"writing {DEMO_COUNT:,} demo products (padding)")
        vitrine("catalog", "demo", "--count", str(DEMO_COUNT), env=env)
    return product_counts()


def product_counts() -> dict[str, int]:
    [row] = sql(
        "SELECT count(*) FILTER (WHERE id < $1) AS real, count(*) FILTER (WHERE id >= $1) AS demo "
        "FROM products WHERE is_active",
        DEMO_FIRST_ID,
    )
    return {"real": int(row["real"]), "demo": int(row["demo"]), "total": int(row["real"]) + int(row["demo"])}


def reset_user_state() -> None:
    """Every run starts with no interactions and no profiles (the catalog is kept)."""
    sql("TRUNCATE user_interactions, user_profiles")


def ensure_models(log: Callable[[str], None]) -> dict[str, str]:
    """model key -> tag in the private store, importing what is missing."""
    path = STATE / "models.json"
    tags: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    store = STATE / "bentoml" / "models" / "vitrine-encoder"
    for key, model in MODELS.items():
        tag = tags.get(key)
        if tag and (store / tag.split(":", 1)[1]).is_dir():
            continue
        log(f"importing {model.label} into {STATE / 'bentoml'}")
        tags[key] = vitrine("model", "import", *model.import_args, env=base_env()).strip().splitlines()[-1]
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tags, indent=2))
    return tags


def ensure_index(model: Model, tag: str, log: Callable[[str], None]) -> str:
    log(f"index for {model.label} ({model.index_path})")
    done = subprocess.run(
        [sys.executable, str(REPO / "loadtests" / "prepare_index.py")],
        env=model_env(model, tag),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"prepare_index.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    from runners.vector_index import current_version, read_manifest

    version = current_version(model.index_path)
    assert version is not None
    manifest = read_manifest(model.index_path / version)
    return (
        f"{manifest.kind}, {manifest.size:,} products, dim {manifest.dim}, version {manifest.version} "
        f"(built in {manifest.build_seconds:.0f} s"
        + (
            f"; efSearch {manifest.ef_search}, calibrated recall@10 {manifest.ef_search_recall}"
            if manifest.ef_search
            else ""
        )
        + ")"
    )


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


@dataclass
class Process:
    """A process started in its own session, so that stopping it stops its whole group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = REPO
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.popen = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def start_redis(workdir: Path, *, maxmemory_mb: int | None = None) -> tuple[Process, str]:
    """A private redis-server; with `maxmemory_mb`, configured as docs/scaling.md tells production to (a bound,
    and the least recently used keys evicted at it)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if maxmemory_mb is not None:
        argv += ["--maxmemory", f"{maxmemory_mb}mb", "--maxmemory-policy", "allkeys-lru"]
    process = Process("redis", [*argv, "--dir", str(workdir)], dict(os.environ), workdir / "redis.log").start()

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_until(answers, timeout=15, what="redis-server")
    return process, f"redis://127.0.0.1:{port}/0"


def flush_redis(url: str) -> None:
    """Empty the private Redis between stacks, so one stack's cached answers and query vectors do not serve the next."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


@dataclass
class Stack:
    """One served system (vitrine or the baseline) and the URL it answers on."""

    name: str
    process: Process
    url: str
    settings: dict[str, str] = field(default_factory=dict)  # what was set for it, for the report

    def wait_ready(self, timeout: float = 300) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.process.log_tail()}")
            return httpx.get(f"{self.url}/ready", timeout=5).status_code == 200

        try:
            wait_until(ready, timeout=timeout, what=f"{self.name} /ready", interval=1.0)
        except (TimeoutError, RuntimeError):
            self.process.stop()
            raise

    def stop(self) -> None:
        self.process.stop()


def private_home(home: Path) -> Path:
    """A BENTOML_HOME of a stack's own that shares the model store. `bentoml serve` keeps its Prometheus
    multiprocess directory (which /metrics and /performance read, and which it empties at start) under
    BENTOML_HOME: stacks up at the same time must not share one."""
    home.mkdir(parents=True, exist_ok=True)
    models = home / "models"
    if not models.exists():
        models.symlink_to(STATE / "bentoml" / "models", target_is_directory=True)
    return home


def checkout(revision: str) -> Path:
    """The code of a git revision, in a detached worktree under var/loadtest/trees (kept for later runs): an A/B
    of a code change serves A from it, with this checkout's environment."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", revision], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = STATE / "trees" / sha
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO, check=True)
    return tree


def serve_vitrine(
    name: str,
    model: Model,
    tag: str,
    redis_url: str,
    settings: dict[str, str],
    logs: Path,
    *,
    app: str,
    tree: Path = REPO,
) -> Stack:
    """`bentoml serve` of `app` (service:Vitrine) with the given settings, of this checkout's code or `tree`'s."""
    flush_redis(redis_url)
    port = free_port()
    home = private_home(logs.parent / "homes" / name)
    env = {**model_env(model, tag), "REDIS_URL": redis_url, "BENTOML_HOME": str(home), **settings}
    if tree != REPO:  # ahead of the editable install, which points at this checkout
        env["PYTHONPATH"] = str(tree)
    argv = [str(BIN / "bentoml"), "serve", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += serving.SERVER_FLAGS  # as `make serve` and the manifests do
    process = Process(name, argv, env, logs / f"{name}.log", cwd=tree).start()
    stack = Stack(name, process, f"http://127.0.0.1:{port}", settings)
    stack.wait_ready()
    return stack


def serve_baseline(name: str, model: Model, tag: str, logs: Path, settings: dict[str, str]) -> Stack:
    port = free_port()
    env = {**model_env(model, tag), **settings}
    argv = [
        sys.executable, "-m", "uvicorn", "loadtests.baseline:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    process = Process(name, argv, env, logs / f"{name}.log").start()
    stack = Stack(name, process, f"http://127.0.0.1:{port}", settings)
    stack.wait_ready()
    return stack
