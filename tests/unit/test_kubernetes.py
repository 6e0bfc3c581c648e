"""deploy/kubernetes: every overlay renders (`kubectl kustomize`), validates against the Kubernetes API schemas
offline (kubernetes-validate), and says what the code expects: settings that exist, one container per BentoML
service serving the service its Deployment is named for, --depends wired to the Services that front them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from domain.settings import Settings
from runners import serving

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(path.name for path in (REPO / "deploy" / "kubernetes" / "overlays").iterdir() if path.is_dir())
KUBERNETES_VERSION = "1.32.0"  # the oldest minor still supported upstream when this was written
# Deployment -> the BentoML service its container must serve (service.py's graph, checked below).
SERVES = {"vitrine-api": "vitrine", "vitrine-encoder": "TextImageEncoder", "vitrine-index": "VectorIndexService"}
PENDING_SETTINGS: set[str] = set()  # settings a manifest may name before domain/settings.py knows them


@cache
def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (.ci/run installs the Debian package `kubectl`)"
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO / "deploy" / "kubernetes" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in render(overlay) if obj["kind"] == kind}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["spec"]["template"]["spec"]["containers"])


@cache
def service_graph(overlay: str) -> dict[str, list[str]]:
    """service.py's graph as the pods see it: each service and its dependencies, with the overlay's ConfigMap and
    Secret settings (INDEX_IN_PROCESS decides whether the index is a service), read in a fresh interpreter."""
    config = objects(overlay, "ConfigMap")["vitrine-settings"]["data"]
    secret = objects(overlay, "Secret")["vitrine-secrets"]["stringData"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("INDEX_", "API_"))}, **secret, **config}
    env["API_KEYS"] = "a-test-key-of-some-length"  # the Secret's value is a placeholder the settings refuse
    program = (
        "import json, service; deps = [d.on.name for d in service.Vitrine.dependencies.values()]; "
        "print(json.dumps({service.Vitrine.name: deps, **{name: [] for name in deps}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def flag(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == name]


def setting_names() -> set[str]:
    return {(field.alias or name).upper() for name, field in Settings.model_fields.items()}


def test_there_are_cpu_and_gpu_overlays():
    assert {"cpu", "gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay):
    rendered = render(overlay)
    assert len(rendered) >= 15
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)  # raises on any schema error
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "vitrine", obj["metadata"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_is_its_own_deployment_serving_the_service_it_is_named_for(overlay):
    graph = service_graph(overlay)
    deployments = objects(overlay, "Deployment")
    assert set(SERVES) <= set(deployments)
    for name, served in SERVES.items():
        assert served in graph, f"{served} is not a service of service:Vitrine"
        [container] = containers(deployments[name])
        args = container["args"]
        # The Bento image's entrypoint maps `start-http-server ...` onto BentoML's per-service server.
        assert "command" not in container and args[0] == "start-http-server", args
        assert flag(args, "--service-name") == [served]
        assert flag(args, "--port") == ["3000"] and container["ports"][0]["containerPort"] == 3000
        # Idle connections outlive the clients' idle timeouts (runners/serving.py SERVER_FLAGS).
        assert flag(args, serving.SERVER_FLAGS[0]) == [serving.SERVER_FLAGS[1]]


def test_make_serve_passes_the_server_flags_every_deployment_has():
    serve_recipe = (REPO / "Makefile").read_text().split("\nserve:", 1)[1].split("\n\n", 1)[0]
    assert " ".join(serving.SERVER_FLAGS) in serve_recipe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_depends_on_the_services_that_front_each_dependency(overlay):

    deployments, services = objects(overlay, "Deployment"), objects(overlay, "Service")
    [api] = containers(deployments["vitrine-api"])
    depends = dict(entry.split("=", 1) for entry in flag(api["args"], "--depends"))
    assert set(depends) == set(service_graph(overlay)["vitrine"])
    for dependency, url in depends.items():
        host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url).groups()  # type: ignore[union-attr]
        target = services[host]
        [deployment] = [d for d in deployments.values() if target["spec"]["selector"].items() <=
                        d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        assert flag(containers(deployment)[0]["args"], "--service-name") == [dependency]
        assert [p["port"] for p in target["spec"]["ports"]] == [int(port)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_graceful_shutdown(overlay):
    for name, deployment in objects(overlay, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        [container] = spec["containers"]
        ready, live = container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]
        # The API's own probes check its dependencies; a runner service has BentoML's /readyz and /livez.
        assert (ready, live) == (("/ready", "/live") if name == "vitrine-api" else ("/readyz", "/livez"))
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        drain = int(flag(container["args"], "--timeout-graceful-shutdown")[0])
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_a_setting(overlay):
    known = setting_names()
    config = objects(overlay, "ConfigMap")["vitrine-settings"]["data"]
    secret = objects(overlay, "Secret")["vitrine-secrets"]["stringData"]
    for name in [*config, *secret]:
        assert name in known or name in PENDING_SETTINGS - known, f"{name} is not a vitrine setting"
    pod = {**secret, **config}  # what a container sees, with a real key where the Secret holds a placeholder
    Settings.model_validate({k.lower(): v for k, v in pod.items() if k in known} | {"api_keys": "k1,k2"})
    for kind in ("Deployment", "Job"):
        for obj in objects(overlay, kind).values():
            for container in containers(obj):
                script = " ".join(container.get("command", []) + container.get("args", []))
                for variable in container.get("env", []):
                    name = variable["name"]
                    # BentoML's own variables, and ones the container's own command line reads, are not settings.
                    assert name in known or name.startswith("BENTOML_") or f"${name}" in script, name
                refs = {ref.get("configMapRef", ref.get("secretRef", {})).get("name") for ref in container["envFrom"]}
                assert refs <= {"vitrine-settings", "vitrine-secrets"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_budgets_and_jobs(overlay):
    hpas = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in objects(overlay, "HorizontalPodAutoscaler").values()}
    assert hpas == {"vitrine-api", "vitrine-encoder"}
    budgets = objects(overlay, "PodDisruptionBudget")
    assert {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for b in budgets.values()} == set(SERVES)

    import cli

    root = typer.main.get_command(cli.app)
    jobs = objects(overlay, "Job")
    invoked = []
    for job in jobs.values():
        [container] = containers(job)
        line = " ".join(container.get("command", []) + container["args"])
        for call in re.findall(r"python cli\.py ((?:[a-z-]+ ?){2})", line):
            group, command = call.split()
            assert command in root.commands[group].commands, f"vitrine {group} {command} does not exist"  # type: ignore[attr-defined]
            invoked.append(f"{group} {command}")
    assert {"db upgrade", "catalog import", "index build"} <= set(invoked)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_index_artifacts_are_shared_read_write_many(overlay):
    claim = objects(overlay, "PersistentVolumeClaim")["vitrine-index"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    index_path = objects(overlay, "ConfigMap")["vitrine-settings"]["data"]["FAISS_INDEX_PATH"]
    index = objects(overlay, "Deployment")["vitrine-index"]
    [mount] = [m for m in containers(index)[0]["volumeMounts"] if m["name"] == "index"]
    assert mount["mountPath"] == index_path and mount["readOnly"] is True
    build = objects(overlay, "Job")["vitrine-catalog-index"]
    [writer] = [m for m in containers(build)[0]["volumeMounts"] if m["name"] == "index"]
    assert writer["mountPath"] == index_path and not writer.get("readOnly", False)
    workloads = [*objects(overlay, "Deployment").values(), *objects(overlay, "Job").values()]
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for obj in workloads
        for volume in obj["spec"]["template"]["spec"].get("volumes", [])
    }
    assert claims <= set(objects(overlay, "PersistentVolumeClaim"))


def test_gpu_overlay_puts_the_encoder_alone_on_a_gpu_in_cuda_mode():
    gpu = objects("gpu", "Deployment")
    assert objects("gpu", "ConfigMap")["vitrine-settings"]["data"]["ENCODER_DEVICE"] == "cuda"
    for name, deployment in gpu.items():
        limits = containers(deployment)[0]["resources"]["limits"]
        assert ("nvidia.com/gpu" in limits) == (name == "vitrine-encoder"), name
    assert containers(gpu["vitrine-encoder"])[0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    cpu = render("cpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(cpu)
    assert objects("cpu", "ConfigMap")["vitrine-settings"]["data"]["ENCODER_DEVICE"] == "cpu"
