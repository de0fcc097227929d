"""The policy file on disk (POLICY_FILE), read at start and again whenever it changes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autoscaler.policy_file import PolicyFile, PolicyFileError, check_settings, parse_policy_file
from common.config import ConfigError, raw
from common.problems import Problems


def read_policy_file(path: Path, environment: Mapping[str, str]) -> PolicyFile:
    """The file's entries, their settings checked over ``environment``; raises OSError or PolicyFileError."""
    policy_file = parse_policy_file(path.read_text(encoding="utf-8"))
    check_settings(policy_file, environment)
    return policy_file


def load_policy_file(
    environ: Mapping[str, str], environment: Mapping[str, str]
) -> tuple[Path | None, PolicyFile]:
    """At start: POLICY_FILE's path and its entries; a file that cannot be used is a ConfigError."""
    value = raw(environ, "POLICY_FILE")
    if value is None:
        return None, PolicyFile()
    path = Path(value)
    try:
        return path, read_policy_file(path, environment)
    except PolicyFileError as error:
        raise ConfigError("POLICY_FILE", value, str(error)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("POLICY_FILE", value, f"cannot be read: {error}") from None


class PolicyFileSource:
    """The entries in force: the file's, read again when its size or time changes.

    A file that cannot be read or parsed at run time is a ``policy_file`` problem, and the
    last entries that could be used stay in force. An entry whose settings cannot be used
    on a service is that service's problem alone (see policies.py).
    """

    def __init__(
        self, path: Path | None, entries: PolicyFile, environment: Mapping[str, str], problems: Problems
    ) -> None:
        self._path = path
        self._entries = entries
        self._environment = environment
        self._problems = problems
        # Read again at the first check: the file may have changed since it was read at start.
        self._seen: tuple[int, int] | None = None

    def _signature(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            status = self._path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def current(self) -> PolicyFile:
        if self._path is None:
            return self._entries
        signature = self._signature()
        if signature is not None and signature == self._seen:
            return self._entries
        try:
            self._entries = read_policy_file(self._path, self._environment)
        except (OSError, UnicodeDecodeError, PolicyFileError) as error:
            self._problems.set(
                "policy_file", str(self._path), f"{error}; the entries read before stay in force"
            )
            return self._entries
        finally:
            self._seen = signature
        self._problems.clear("policy_file", str(self._path))
        return self._entries
