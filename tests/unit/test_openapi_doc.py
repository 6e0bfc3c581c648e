"""The served OpenAPI document (adapters/openapi_doc.py): valid OpenAPI 3.0, every error answer documented.

Built from the service's own document as BentoML writes it (no server needed); the e2e suite checks the
served one and fuzzes the API from it (tests/e2e/test_api_fuzz.py).
"""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

from adapters.openapi_doc import ERROR_RESPONSES, fix_document


@pytest.fixture(scope="module")
def bentoml_document() -> dict:
    import service

    return json.loads(json.dumps(service.Vitrine.openapi_spec.asdict()))


def test_bentomls_own_document_is_not_valid_openapi_30(bentoml_document):
    assert bentoml_document["openapi"].startswith("3.0")
    with pytest.raises(Exception):  # noqa: B017 - invalid either way: errors, or a schema it cannot even read
        errors = list(OpenAPIV30SpecValidator(bentoml_document).iter_errors())
        assert errors == []


def test_the_fixed_document_is_valid_openapi_30_and_documents_every_error(bentoml_document):
    fixed = fix_document(json.loads(json.dumps(bentoml_document)))
    assert list(OpenAPIV30SpecValidator(fixed).iter_errors()) == []
    operations = [op for item in fixed["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert len(operations) >= 15
    for operation in operations:
        assert set(ERROR_RESPONSES) <= set(operation["responses"])
    answer = fixed["paths"]["/api/v1/search"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["message"]["nullable"] is True  # None on most answers
    user = fixed["paths"]["/api/v1/users/{user_id}"]["delete"]
    assert user["parameters"][0]["schema"]["minimum"] == 1


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 0, "exclusiveMinimum": True}),
        ({"const": "accepted"}, {"enum": ["accepted"]}),
        ({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}, {"type": "string", "nullable": True}),
        (
            {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]},
            {"allOf": [{"$ref": "#/x"}], "nullable": True},
        ),
        ({"type": ["integer", "null"]}, {"type": "integer", "nullable": True}),
        ({"type": "file"}, {"type": "string", "format": "binary"}),
        ({"type": "string", "default": None}, {"type": "string", "nullable": True}),
        ({"$ref": "#/x", "default": None}, {"allOf": [{"$ref": "#/x"}], "nullable": True}),
    ],
)
def test_json_schema_spellings_become_openapi_30_ones(schema, expected):
    assert fix_document({"paths": {}, "components": {"schemas": {"S": schema}}})["components"]["schemas"]["S"] == (
        expected
    )
