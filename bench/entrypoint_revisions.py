"""The entry point's throughput as two revisions render it, in one run.

    .venv/bin/python bench/entrypoint_revisions.py BEFORE [AFTER] [--rounds N] [--seconds S]

BEFORE and AFTER are git revisions (AFTER defaults to the working tree). Each one's
``nginx/`` (its ``config.render`` and its Lua files) is taken from git and renders the
entry point's configuration for one task; nginx runs it with one worker, in front of a
second server block of the same nginx that answers ``/api/health`` itself, so that no
application limits the rate (see ``entrypoint_measurement.py``). The revisions alternate
for ``--rounds`` rounds; the medians are compared. Needs nginx with its Lua module, wrk,
and root.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from entrypoint_measurement import SETTINGS, rendered, requests_per_second

ROOT = Path(__file__).resolve().parents[1]


def config_module(revision: str | None, directory: Path) -> ModuleType:
    """``nginx/config.py`` of ``revision`` (None: the working tree), with its Lua files beside it."""
    target = directory / (revision or "working-tree")
    if revision is None:
        shutil.copytree(ROOT / "nginx", target / "nginx")
    else:
        names = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", revision, "nginx/"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in names:
            content = subprocess.run(
                ["git", "show", f"{revision}:{name}"], cwd=ROOT, capture_output=True, check=True
            )
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(content.stdout)
    spec = importlib.util.spec_from_file_location(f"config_{target.name}", target / "nginx" / "config.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {target / 'nginx' / 'config.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def configuration(module: ModuleType, directory: Path, name: str) -> Path:
    """The revision's configuration for one task, before the upstream block of the same nginx."""
    fields = {field.name for field in dataclasses.fields(module.ProxySettings)}
    ours = dataclasses.asdict(SETTINGS)
    settings = module.ProxySettings(**{key: value for key, value in ours.items() if key in fields})
    path = directory / f"{name}.conf"
    path.write_text(rendered(module, settings, directory))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    arguments = parser.parse_args()
    labels = (arguments.before, arguments.after or "working tree")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        configs = [
            configuration(config_module(revision, directory), directory, f"revision-{index}")
            for index, revision in enumerate((arguments.before, arguments.after))
        ]
        rates: list[list[float]] = [[], []]
        for _ in range(arguments.rounds):
            for index, config in enumerate(configs):
                rates[index].append(requests_per_second(config, arguments.seconds, arguments.connections))
    print(f"{'revision':<24}{'median req/s':>14}   every round")
    for label, measured in zip(labels, rates, strict=True):
        rounds = " ".join(f"{rate:.0f}" for rate in measured)
        print(f"{label:<24}{statistics.median(measured):>14.0f}   {rounds}")
    change = statistics.median(rates[1]) / statistics.median(rates[0]) - 1
    print(f"throughput change: {100 * change:+.1f} %")


if __name__ == "__main__":
    main()
