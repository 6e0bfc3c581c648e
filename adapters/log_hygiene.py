"""Client errors are not server errors in the log.

BentoML logs every request it refuses, a validation failure included, as `ERROR Exception on <path>` with the
whole traceback: a fuzzer or one broken client then buries the real errors. This filter, on BentoML's HTTP
logger, turns the records of client errors (pydantic validation, a BentoML 4xx) into one WARNING line naming
the error, without the traceback; anything else stays an ERROR with its traceback.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_HTTP_LOGGERS = ("bentoml._internal.server.http_app",)


class ClientErrorsAsWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if exc is None or not _is_client_error(exc):
            return True
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = f"{record.msg}: client error, {type(exc).__name__}: %s"
        record.args = (*(record.args if isinstance(record.args, tuple) else ()), _first_line(exc))
        record.exc_info, record.exc_text = None, None
        return True


def _is_client_error(exc: BaseException | None) -> bool:
    if isinstance(exc, ValidationError):
        return True
    status = getattr(getattr(exc, "error_code", None), "value", None)
    return isinstance(status, int) and 400 <= status < 500


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[:2])[:300] if text else ""


def install_client_error_filter() -> None:
    for name in BENTOML_HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClientErrorsAsWarnings) for f in logger.filters):
            logger.addFilter(ClientErrorsAsWarnings())
