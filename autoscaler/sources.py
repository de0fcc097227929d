"""Metric sources: a value read from any Prometheus-text endpoint, for the ``external`` metric.

A service names its source in labels (``autoscaler.source.*``): the endpoints, the
metric and its label selector, how the tasks' values combine, and whether the value is
shared out over the replicas. Each endpoint's host is resolved to all its addresses, so
``tasks.<service>`` reads every task. One source per service, as KEDA has one scaler per
kind of metric: a queue length, a connection count, a database's load.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.core.model import Combine, MetricSource, Thresholds
from autoscaler.labels import SOURCE_PREFIX
from common.config import ConfigError, parse_bool, parse_float

if TYPE_CHECKING:
    # Only the annotation: the collectors' module reads the settings, which read the policy, which reads this.
    from autoscaler.collectors import Resolver

COMBINES: tuple[Combine, ...] = ("sum", "mean", "max")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
MOST_BYTES = 4_000_000
"""An endpoint's answer larger than this is refused, not parsed."""


def _label(name: str) -> str:
    return f"{SOURCE_PREFIX}{name}"


def _urls(text: str) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in text.split(",") if part.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(_label("url"), text, "must be http(s) URLs, separated by commas")
    if not urls:
        raise ConfigError(_label("url"), text, "must name at least one URL")
    return urls


def _selector(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        name, equals, value = part.partition("=")
        if not equals or not LABEL_NAME.fullmatch(name.strip()):
            raise ConfigError(_label("selector"), text, "must be label=value pairs, separated by commas")
        pairs.append((name.strip(), value.strip().strip('"')))
    return tuple(pairs)


SOURCE_LABELS = ("url", "metric", "selector", "combine", "per_replica", "timeout", "absent_is_zero",
                 "scale_up_threshold", "scale_down_threshold")  # fmt: skip


def parse_source(labels: Mapping[str, str]) -> tuple[MetricSource, Thresholds] | None:
    """A service's metric source and its thresholds from its labels; None without one; raises ConfigError.

    The down threshold is half the up one unless set, as for a per-replica target; the up
    threshold is the target of the ``target`` algorithm.
    """
    given = {
        label[len(SOURCE_PREFIX) :]: value
        for label, value in labels.items()
        if label.startswith(SOURCE_PREFIX)
    }
    if not given:
        return None
    for name, value in given.items():
        if name not in SOURCE_LABELS:
            raise ConfigError(_label(name), value, f"unknown label; a source has {', '.join(SOURCE_LABELS)}")
    for required in ("url", "metric", "scale_up_threshold"):
        if required not in given:
            raise ConfigError(_label(required), "", "a metric source needs it")
    metric = given["metric"].strip()
    if not METRIC_NAME.fullmatch(metric):
        raise ConfigError(_label("metric"), given["metric"], "must be a Prometheus metric name")
    combine = given.get("combine", "sum").strip()
    if combine not in COMBINES:
        raise ConfigError(_label("combine"), combine, f"must be one of {', '.join(COMBINES)}")
    up = parse_float(_label("scale_up_threshold"), given["scale_up_threshold"], minimum=0, maximum=1e15)
    down_text = given.get("scale_down_threshold")
    down = (
        up / 2
        if down_text is None
        else parse_float(_label("scale_down_threshold"), down_text, minimum=0, maximum=1e15)
    )
    if down >= up:
        raise ConfigError(
            _label("scale_down_threshold"), str(down_text), f"must be below the up threshold ({up:g})"
        )
    source = MetricSource(
        urls=_urls(given["url"]),
        metric=metric,
        selector=_selector(given.get("selector", "")),
        combine=combine,
        per_replica=parse_bool(_label("per_replica"), given.get("per_replica", "false")),
        timeout=parse_float(_label("timeout"), given.get("timeout", "2"), minimum=0.1, maximum=60),
        absent_is_zero=parse_bool(_label("absent_is_zero"), given.get("absent_is_zero", "false")),
    )
    return source, Thresholds(up=up, down=down)


class BadValueError(ValueError):
    """An endpoint's answer gives no usable value: not Prometheus text, or not a finite number."""


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text answer as (name, labels, value); BadValueError if it is not one."""
    try:
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError) as error:
        raise BadValueError(f"not Prometheus text: {error}") from None


def value_in(text: str, metric: str, selector: tuple[tuple[str, str], ...]) -> float | None:
    """The sum of the samples named ``metric`` whose labels match ``selector``; None when none match."""
    values = [
        value
        for name, labels, value in _samples(text)
        if name == metric and all(labels.get(label) == wanted for label, wanted in selector)
    ]
    for value in values:
        if not math.isfinite(value):
            raise BadValueError(f"{metric} is {value}")
    return sum(values) if values else None


def combined(values: list[float], how: Combine) -> float | None:
    if not values:
        return None
    if how == "sum":
        return sum(values)
    if how == "mean":
        return sum(values) / len(values)
    return max(values)


@dataclass(frozen=True)
class SourceReading:
    value: float | None
    """The combined value; None when no task gave one, or when any failed (a partial sum could mislead)."""
    read_at: float
    tasks: int = 0
    """Tasks that answered with a value."""
    problems: dict[str, str] = field(default_factory=dict)
    """Per endpoint address: why it gave no value."""


async def _addresses(url: str, resolve: Resolver) -> list[str]:
    """One URL per address of the URL's host; none when the name has no address (a service at 0 tasks)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError:
        return []
    return [
        urlunsplit(parts._replace(netloc=f"[{a}]:{port}" if ":" in a else f"{a}:{port}")) for a in addresses
    ]


async def _read_one(client: httpx.AsyncClient, url: str, source: MetricSource) -> float | None:
    response = await client.get(url, timeout=source.timeout)
    response.raise_for_status()
    if len(response.content) > MOST_BYTES:
        raise BadValueError(f"answer of {len(response.content)} bytes, more than {MOST_BYTES}")
    value = value_in(response.text, source.metric, source.selector)
    return 0.0 if value is None and source.absent_is_zero else value


async def read_source(
    source: MetricSource, client: httpx.AsyncClient, resolve: Resolver, clock: Callable[[], float]
) -> SourceReading:
    """Read every task behind the source's URLs at once, each within the source's timeout."""
    urls = [url for listed in source.urls for url in await _addresses(listed, resolve)]
    if not urls:
        # One name without tasks is a service at 0; none at all is a source that reads nothing.
        hosts = ", ".join(sorted({urlsplit(url).hostname or url for url in source.urls}))
        return SourceReading(None, clock(), 0, {hosts: "no address: no task of any of these names"})
    results = await asyncio.gather(*(_read_one(client, url, source) for url in urls), return_exceptions=True)
    values, problems = [], {}
    for url, result in zip(urls, results, strict=True):
        if isinstance(result, BaseException):
            problems[url] = str(result) if isinstance(result, BadValueError) else repr(result)
        elif result is not None:
            values.append(result)
    value = None if problems else combined(values, source.combine)
    return SourceReading(value, clock(), len(values), problems)
