"""Property-based fuzzing of the served API from its own OpenAPI document (schemathesis), in every `make test`.

The document must be valid for the OpenAPI version it declares; then every operation in it gets generated
requests, valid and invalid (bodies, parameters, headers, content types), against the shared e2e stack, and
every answer must be no server error, a documented status code, and a body that matches the documented
schema. The run is seeded, so a failure reproduces; its JSON report is kept under the test's tmp directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.e2e.conftest import OPERATOR_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.shared_stack_last]

BIN = Path(sys.executable).parent
CASES_PER_OPERATION = 300
MIN_CASES = 2000
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_the_openapi_document_is_valid_for_its_declared_version(stack):
    document = stack.get("/docs.json").json()
    assert document["openapi"].startswith("3.0")
    validate(document)  # raises with the first problem
    search = document["paths"]["/api/v1/search"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "429", "503"} <= set(search)
    assert "Retry-After" in search["429"]["headers"] and "RateLimit-Remaining" in search["429"]["headers"]


@pytest.mark.timeout(900)
def test_fuzzing_every_operation_finds_no_server_error_and_only_documented_answers(stack, tmp_path):
    report = tmp_path / "schemathesis.json"
    completed = subprocess.run(
        [
            str(BIN / "st"),
            "run",
            f"{stack.url}/docs.json",
            "--header",
            f"X-API-Key: {OPERATOR_KEY}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(CASES_PER_OPERATION),
            "--seed",
            "20261129",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
    )
    output = completed.stdout + completed.stderr
    print(output[-6000:])  # the summary, for the test log
    assert completed.returncode == 0, output[-8000:]
    summary = json.loads(report.read_text())
    operations, cases = summary["operations"], summary["test_cases"]
    print("fuzzing summary:", {"operations": operations, "test_cases": cases, "failures": summary["failures"]})
    assert operations["tested"] == operations["total"] >= 15, operations  # every operation, none skipped
    assert cases["generated"] >= MIN_CASES, cases
    assert cases["with_failures"] == 0 and cases["errored"] == 0 and summary["failures"] == [], summary
    assert stack.get("/ready").status_code == 200  # and the stack is still well
