"""Client errors are logged as one WARNING line without a traceback (adapters/log_hygiene.py)."""

from __future__ import annotations

import logging

import pytest
from bentoml.exceptions import BadInput, InternalServerError
from pydantic import BaseModel, ValidationError

from adapters.log_hygiene import ClientErrorsAsWarnings


class Query(BaseModel):
    limit: int


def record_for(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        import sys

        info = sys.exc_info()
    return logging.LogRecord("bentoml", logging.ERROR, __file__, 1, "Exception on %s [%s]", ("/x", "POST"), info)


def validation_error() -> ValidationError:
    try:
        Query.model_validate({"limit": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize("exc", [validation_error(), BadInput("multipart: no boundary")])
def test_a_client_error_becomes_one_warning_line(exc):
    record = record_for(exc)
    assert ClientErrorsAsWarnings().filter(record)
    assert record.levelname == "WARNING" and record.exc_info is None
    message = record.getMessage()
    assert message.startswith("Exception on /x [POST]: client error") and "\n" not in message


def test_a_server_error_keeps_its_level_and_traceback():
    record = record_for(InternalServerError("boom"))
    assert ClientErrorsAsWarnings().filter(record)
    assert record.levelname == "ERROR" and record.exc_info is not None
    plain = record_for(RuntimeError("bug"))
    ClientErrorsAsWarnings().filter(plain)
    assert plain.levelname == "ERROR" and plain.exc_info is not None
