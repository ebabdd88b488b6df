"""Structured logging shared by all services: structlog with a correlation id in every line.

The correlation id travels in the Kafka header ``correlation_id`` (and the HTTP header
``X-Correlation-ID``); :func:`bind_correlation` puts it into the context of the code that
handles the message, so every log line written meanwhile carries it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from hotline.privacy import mask_text, redact_log


def configure(service: str, level: str = "INFO", json: bool = False) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for handler in logging.getLogger().handlers:  # stdlib loggers (libraries) are redacted too
        handler.addFilter(_RedactFilter())
    for noisy in ("aiokafka", "kafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_log,  # after format_exc_info: tracebacks are redacted too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


@contextmanager
def bind_correlation(correlation_id: str | None) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id or "-"):
        yield
