"""`bentoml build` packs the whole deployment offline into one Bento, with a Dockerfile for the container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.support import BIN, REPO

pytestmark = pytest.mark.e2e


def test_bento_builds_offline_with_the_model_and_a_dockerfile(stack):
    completed = subprocess.run(
        [str(BIN / "bentoml"), "build", "--output", "tag"],
        cwd=REPO,
        env={**stack.env, "UV_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    tag = completed.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = Path(stack.env["BENTOML_HOME"]) / "bentos" / name / version
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    services = {service["name"]: service for service in manifest["services"]}
    assert set(services) == {"vitrine", "TextImageEncoder", "VectorIndexService"}
    [model] = services["TextImageEncoder"]["models"]
    assert model["tag"].startswith("vitrine-encoder:")
    assert services["TextImageEncoder"]["config"]["runner_connection"]["max_requests"] >= 1_000_000
    packed_files = ("service.py", "migrations/versions/0001_initial.py", "runners/index_service.py", "domain/search.py")
    data_files = ("adapters/shop_words.json", "adapters/colour_names.json")
    for packed in (*packed_files, *data_files, "web/index.html", "web/app.js"):
        assert (bento / "src" / packed).is_file(), packed
    assert not (bento / "src" / "tests").exists()
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.40" in requirements and "faiss-cpu" in requirements
