"""What the end-to-end tests share: where things are, a free port, waiting for a condition, the `vitrine`
command, serving a BentoML service in its own process group and stopping it, and the tiny open_clip model.

Plain functions, no fixtures (those live in conftest.py), so any e2e module imports them from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from runners import serving

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_FEED = SHARED_DATA / "fashion-product-images" / "awin-feed.csv"
BIN = Path(sys.executable).parent
API_KEY = "e2e-test-key-7f3a"  # the shared stack requires it (tests/e2e/conftest.py)

# A tiny open_clip architecture (random weights): an image tower that loads and encodes in well under a second.
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
    process: subprocess.Popen[bytes] | None = None,
) -> T:
    """The first truthy result of `check()`, tried every `interval` seconds; an exception counts as not yet.

    With `process`, stop at once if it has exited: a server that crashed at start will never answer.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} while waiting for {what}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run the installed `vitrine` command; its stdout, or RuntimeError with all it printed."""
    completed = subprocess.run(
        [str(BIN / "vitrine"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise RuntimeError(f"vitrine {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def serve(target: str, *, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`bentoml serve TARGET` on 127.0.0.1:PORT, output appended to `log_path`, in a process group of its own
    so that `stop_process_group` ends the whole of it (API workers and runners)."""
    argv = [str(BIN / "bentoml"), "serve", target, "--port", str(port), "--host", "127.0.0.1"]
    argv += serving.SERVER_FLAGS  # as `make serve` and the manifests do
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def serve_split(*, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`vitrine topology split`: every service its own server on TCP, wired with --depends, as pods run them;
    the API answers on PORT. Logs and topology.json beside `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(BIN / "vitrine"), "topology", "split", "--port", str(port), "--run-dir", str(log_path.parent)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group (workers outlive a leader that exited), then SIGKILL if it is not gone within 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def log_tail(path: Path, characters: int = 4000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else f"(no log at {path})"


def write_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """TINY_CONFIG with random weights (seeded), as the files `vitrine model import open-clip` takes:
    (config json, checkpoint)."""
    import open_clip
    import torch

    config, checkpoint = folder / "tiny-clip.json", folder / "tiny-clip.pt"
    config.write_text(json.dumps(TINY_CONFIG))
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**TINY_CONFIG).state_dict(), checkpoint)
    return config, checkpoint


@contextlib.contextmanager
def embedded_stack(home: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """Serve an already prepared embedded stack (SQLite, in-process cache) from `home`; a client to it."""
    port = free_port()
    process = serve("service:Vitrine", port=port, env=env, log_path=home / "serve.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        ready = lambda: client.get("/ready").status_code == 200  # noqa: E731
        wait_until(ready, timeout=240, interval=1, what=f"{home} /ready", process=process)
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
