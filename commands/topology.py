"""`vitrine topology split`: every service as its own server on a TCP port, wired as the Kubernetes pods are.

    vitrine topology split --port 3000            # encoder, 2 index replicas, 2 API replicas, two balancers

What starts, each a separate `start-http-server` process (BentoML 1.4's per-service server: the Bento image's
entrypoint maps `start-http-server ARGS` onto `python -m bentoml_cli._internal.start start-http-server ARGS
$BENTO_PATH`, which is what deploy/kubernetes runs in each container):

    encoder     --service-name TextImageEncoder
    index-N     --service-name VectorIndexService         (--index-replicas, all reading FAISS_INDEX_PATH)
    api-N       --service-name vitrine --depends TextImageEncoder=http://... --depends VectorIndexService=http://...

and two round-robin TCP balancers standing in for Kubernetes Services: one in front of the index replicas
(what the APIs' --depends names) and one in front of the API replicas, on --port. A dependency named by URL
is called over HTTP with pickled arguments (`application/vnd.bentoml+pickle`), not over the Unix socket
`bentoml serve` uses. The index lives in its own service here (the INDEX_IN_PROCESS=false shape).

Where `bentoml serve` shares things because everything is on one machine, the split does what separate pods
do: each server gets its own BENTOML_HOME (its own Prometheus multiprocess directory: a server's start empties
that directory, and /performance, /cache/stats and /metrics then cover only that server's processes) with
the model store linked in. The index replicas share FAISS_INDEX_PATH, as pods share a ReadWriteMany volume.

`topology.json` in --run-dir lists every server's URL. The command stays in the foreground; Ctrl-C or SIGTERM
stops every server; if one server exits, the others are stopped too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from runners import serving

app = typer.Typer(no_args_is_help=True)

REPO = Path(__file__).resolve().parents[1]
SERVICE = "service:Vitrine"
API, ENCODER, INDEX = "vitrine", "TextImageEncoder", "VectorIndexService"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_command(service_name: str, *, host: str, port: int, depends: dict[str, str] | None = None) -> list[str]:
    """The command one pod runs for one service (the image's entrypoint adds the Bento path)."""
    command = [sys.executable, "-m", "bentoml_cli._internal.start", "start-http-server", SERVICE]
    command += ["--service-name", service_name, "--host", host, "--port", str(port)]
    command += serving.SERVER_FLAGS
    for name, url in (depends or {}).items():
        command += ["--depends", f"{name}={url}"]
    return command


class RoundRobin:
    """A TCP balancer, one backend per connection in turn (as kube-proxy does); a backend that refuses the
    connection is skipped, as an endpoint that is not ready is."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._turn = itertools.cycle(range(len(backends)))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._turn)]
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection(host, port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@dataclass
class SplitTopology:
    host: str
    port: int
    run_dir: Path
    env: dict[str, str]
    index_replicas: int = 2
    api_replicas: int = 2
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def _server_env(self, name: str) -> dict[str, str]:
        """A pod's environment: its own BENTOML_HOME (own metrics directory) with the shared model store."""
        shared_home = Path(self.env.get("BENTOML_HOME", Path.home() / "bentoml"))
        home = self.run_dir / name / "bentoml"
        home.mkdir(parents=True, exist_ok=True)
        models = home / "models"
        if not models.exists():
            (shared_home / "models").mkdir(parents=True, exist_ok=True)
            models.symlink_to((shared_home / "models").resolve(), target_is_directory=True)
        return {**self.env, "BENTOML_HOME": str(home), "INDEX_IN_PROCESS": "false"}

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.run_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=REPO, env=self._server_env(name), stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> dict[str, tuple[str, int, list[tuple[str, int]]]]:
        """Start every server; returns the balancers to run: name -> (host, port, backends)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        local = "127.0.0.1"
        encoder_port = free_port()
        self._start("encoder", server_command(ENCODER, host=local, port=encoder_port))
        self.urls["encoder"] = f"http://{local}:{encoder_port}"
        index_ports = []
        for n in range(1, self.index_replicas + 1):
            index_ports.append(free_port())
            self._start(f"index-{n}", server_command(INDEX, host=local, port=index_ports[-1]))
            self.urls[f"index-{n}"] = f"http://{local}:{index_ports[-1]}"
        index_service = free_port()
        self.urls["index"] = f"http://{local}:{index_service}"
        depends = {ENCODER: self.urls["encoder"], INDEX: self.urls["index"]}
        api_ports = []
        for n in range(1, self.api_replicas + 1):
            api_ports.append(free_port())
            self._start(f"api-{n}", server_command(API, host=local, port=api_ports[-1], depends=depends))
            self.urls[f"api-{n}"] = f"http://{local}:{api_ports[-1]}"
        self.urls["api"] = f"http://{self.host}:{self.port}"
        (self.run_dir / "topology.json").write_text(json.dumps(self.urls, indent=2), encoding="utf-8")
        return {
            "index": (local, index_service, [(local, port) for port in index_ports]),
            "api": (self.host, self.port, [(local, port) for port in api_ports]),
        }

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def first_exit(self) -> tuple[str, int] | None:
        for name, process in self.processes.items():
            if (code := process.poll()) is not None:
                return name, code
        return None


async def _serve_balancers(balancers: dict[str, tuple[str, int, list[tuple[str, int]]]], stop: asyncio.Event) -> None:
    servers = []
    for host, port, backends in balancers.values():
        servers.append(await asyncio.start_server(RoundRobin(backends).handle, host, port))
    await stop.wait()
    for server in servers:
        server.close()


@app.command()
def split(
    port: Annotated[int, typer.Option(help="Where the API replicas' balancer listens.")] = 3000,
    host: Annotated[str, typer.Option(help="The API balancer's address.")] = "127.0.0.1",
    index_replicas: Annotated[int, typer.Option(min=1, max=8)] = 2,
    api_replicas: Annotated[int, typer.Option(min=1, max=8)] = 2,
    run_dir: Annotated[Path, typer.Option(help="Logs, per-server BENTOML_HOME, topology.json.")] = Path("var/split"),
) -> None:
    """Serve the encoder, the index and the API as separate servers on TCP ports, as pods would run them."""
    topology = SplitTopology(
        host=host,
        port=port,
        run_dir=run_dir.resolve(),
        env=dict(os.environ),
        index_replicas=index_replicas,
        api_replicas=api_replicas,
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def request_stop(*_: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    balancers = topology.start()
    typer.echo(json.dumps(topology.urls, indent=2))

    failed: list[tuple[str, int]] = []

    def watch_children() -> None:
        while not stop.is_set():
            if (exited := topology.first_exit()) is not None:
                typer.echo(f"{exited[0]} exited with {exited[1]}; stopping the others", err=True)
                failed.append(exited)
                request_stop()
                return
            threading.Event().wait(1.0)

    threading.Thread(target=watch_children, daemon=True).start()
    try:
        loop.run_until_complete(_serve_balancers(balancers, stop))
    finally:
        topology.stop()
        loop.close()
    raise typer.Exit(1 if failed else 0)
