"""The persisted form of a service's state: plain JSON values, checked strictly when read back.

Pure: no I/O. Whatever is read back is untrusted (an older version, a hand edit, a
truncated write): ``load`` accepts only a document that ``dump`` could have written,
with every number finite and every length bounded, and raises ValueError otherwise.
"""

from __future__ import annotations

from typing import Any

from autoscaler.core.forecast import Forecaster, slots_in
from autoscaler.core.model import ServiceState
from common.bounds import PREDICTIVE_SEASON
from common.numbers import finite

FORMAT = 1
"""Version of the persisted form; another version is not read."""
MOST_ENTRIES = 100_000
"""More history entries than any policy within its bounds keeps."""


def _number(value: Any) -> float:  # noqa: ANN401 - checks an untrusted JSON value
    number = finite(value)
    if number is None:
        raise TypeError(f"not a finite number: {value!r}")
    return number


def _optional_number(value: Any) -> float | None:  # noqa: ANN401 - checks an untrusted JSON value
    return None if value is None else _number(value)


def _whole(value: Any) -> int:  # noqa: ANN401 - checks an untrusted JSON value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a whole number: {value!r}")
    return value


def _list(value: Any, limit: int = MOST_ENTRIES) -> list[Any]:  # noqa: ANN401 - checks an untrusted JSON value
    if not isinstance(value, list) or len(value) > limit:
        raise TypeError("not a list of the expected length")
    return value


def _entries(value: Any) -> tuple[tuple[float, int], ...]:  # noqa: ANN401 - checks an untrusted JSON value
    pairs = []
    for entry in _list(value):
        at, count = _list(entry, 2)
        pairs.append((_number(at), _whole(count)))
    return tuple(pairs)


def _floats(value: Any, length: int) -> tuple[float, ...]:  # noqa: ANN401 - checks an untrusted JSON value
    numbers = tuple(_number(item) for item in _list(value, length))
    if len(numbers) != length:
        raise ValueError(f"expected {length} values, got {len(numbers)}")
    return numbers


def dump_forecaster(forecaster: Forecaster) -> dict[str, Any]:
    return {
        "horizon": forecaster.horizon,
        "season": forecaster.season,
        "level": forecaster.level,
        "trend": forecaster.trend,
        "seasonal": None if forecaster.seasonal is None else list(forecaster.seasonal),
        "error": forecaster.error,
        "scored": forecaster.scored,
        "first_at": forecaster.first_at,
        "last_at": forecaster.last_at,
        "profile_sum": list(forecaster.profile_sum),
        "profile_count": list(forecaster.profile_count),
        "pending": [list(entry) for entry in forecaster.pending],
        "last_scored_at": forecaster.last_scored_at,
    }


def load_forecaster(document: dict[str, Any]) -> Forecaster:
    season = _number(document["season"])
    if not PREDICTIVE_SEASON[0] <= season <= PREDICTIVE_SEASON[1]:
        raise ValueError(f"season {season} out of range")
    slots = slots_in(season)
    seasonal = document["seasonal"]
    profile_length = 0 if seasonal is not None else slots
    counts = tuple(_whole(count) for count in _list(document["profile_count"], slots))
    if len(counts) != profile_length:
        raise ValueError("profile counts do not match the season")
    pending = []
    for entry in _list(document["pending"]):
        due, forecast = _list(entry, 2)
        pending.append((_number(due), _number(forecast)))
    return Forecaster(
        horizon=_number(document["horizon"]),
        season=season,
        level=_optional_number(document["level"]),
        trend=_number(document["trend"]),
        seasonal=None if seasonal is None else _floats(seasonal, slots),
        error=_number(document["error"]),
        scored=_whole(document["scored"]),
        first_at=_number(document["first_at"]),
        last_at=_number(document["last_at"]),
        profile_sum=_floats(document["profile_sum"], profile_length),
        profile_count=counts,
        pending=tuple(pending),
        last_scored_at=_optional_number(document["last_scored_at"]),
    )


def dump(state: ServiceState) -> dict[str, Any]:
    """The state as JSON values."""
    return {
        "format": FORMAT,
        "replicas": state.replicas,
        "last_scaled_at": state.last_scaled_at,
        "last_outside_change_at": state.last_outside_change_at,
        "recommendations": [list(entry) for entry in state.recommendations],
        "changes": [list(entry) for entry in state.changes],
        "forecaster": None if state.forecaster is None else dump_forecaster(state.forecaster),
    }


def load(document: Any) -> ServiceState:  # noqa: ANN401 - checks an untrusted JSON value
    """The state from what ``dump`` wrote; ValueError for anything else."""
    try:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not a state document of format 1")
        replicas = document["replicas"]
        forecaster = document["forecaster"]
        if forecaster is not None and not isinstance(forecaster, dict):
            raise ValueError("forecaster is not an object")
        return ServiceState(
            replicas=None if replicas is None else _whole(replicas),
            last_scaled_at=_optional_number(document["last_scaled_at"]),
            last_outside_change_at=_optional_number(document["last_outside_change_at"]),
            recommendations=_entries(document["recommendations"]),
            changes=_entries(document["changes"]),
            forecaster=None if forecaster is None else load_forecaster(forecaster),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"malformed state: {error!r}") from None
