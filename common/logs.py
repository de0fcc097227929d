"""Structured JSON logging: one JSON object per line on standard output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def configure_from(environ: Mapping[str, str]) -> None:
    """Logging at LOG_LEVEL; an invalid level logs at info until the settings reject it."""
    level = environ.get("LOG_LEVEL", "info").strip().lower()
    configure(level if level in LEVELS else "info")
