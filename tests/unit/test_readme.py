"""The README's shell commands: every file, option, variable and endpoint they name exists.

The cheap ones run: each command's --help, the backtest on one day, the load generator's
options as it checks them before sending anything, and ``--down`` of a stack that is not
there. So the README cannot drift from what the project does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from autoscaler.backtest import cli as backtest
from loadtest.__main__ import parse_arguments
from tests.unit.paths import ROOT

README = (ROOT / "README.md").read_text()
OUTPUTS = {"--out", "--record", "--series-out", "--plot", "--backup"}
"""Options whose next word is a file the command makes."""
MADE_BEFORE = {"--restore": "--backup"}
"""Options whose next word is a file the README's command with the other option makes."""
"""Options whose value is a file or folder the command writes: it need not exist yet."""
LOADTEST = ("python -m loadtest", "python3 -m loadtest", ".venv/bin/python -m loadtest", "./stress-test.sh")
BACKTEST = ("python -m autoscaler simulate", ".venv/bin/python -m autoscaler simulate")


@dataclass(frozen=True)
class Command:
    text: str
    directory: Path
    """Where it runs: the repository, or the folder a ``cd DIR &&`` before it went to."""
    variables: dict[str, str]
    words: list[str]


def commands() -> Iterator[Command]:
    """Every command of the README's ``sh`` blocks, continuation lines joined, comments dropped."""
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            directory = ROOT
            for part in re.split(r"&&", line.split(" #", 1)[0]):
                words = shlex.split(part)
                if not words:
                    continue
                if words[0] == "cd":
                    directory = directory / words[1]
                    continue
                variables = {}
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                    name, value = words.pop(0).split("=", 1)
                    variables[name] = value
                yield Command(part.strip(), directory, variables, words)


COMMANDS = list(commands())


def named(prefixes: tuple[str, ...]) -> list[Command]:
    return [command for command in COMMANDS if " ".join(command.words).startswith(prefixes)]


def arguments_after(command: Command, prefixes: tuple[str, ...]) -> list[str]:
    joined = " ".join(command.words)
    prefix = next(prefix for prefix in prefixes if joined.startswith(prefix))
    return command.words[len(prefix.split()) :]


DOCUMENTED = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.MULTILINE))
"""The variables of the README's table."""
SOURCES = "".join(
    path.read_text()
    for path in [*ROOT.glob("*.sh"), ROOT / "stack.yml", *ROOT.glob("*/**/*.py")]
    if ".venv" not in path.parts and path.is_file()
)
"""Every script, stack file and Python source, read once: where a variable must be read."""


class TestReadmeCommands:
    def test_the_readme_has_the_commands_a_new_user_needs(self):
        """The README shows how to deploy, load and test: the commands a new user starts with."""
        texts = [command.text for command in COMMANDS]
        assert "./deploy-autoscaling.sh" in " ".join(texts)
        assert any(text.startswith("./stress-test.sh --profile heavy") for text in texts)
        assert "./run-tests.sh" in texts

    @pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.text[:60])
    def test_every_file_a_command_names_exists(self, command):
        """Every file a README command names is in the repository, or made by a command before it."""
        words = command.words
        for index, word in enumerate(words):
            previous = words[index - 1] if index else ""
            if word.startswith(("-", "/", "http")) or "=" in word or previous in OUTPUTS or previous == "-m":
                continue
            if previous in MADE_BEFORE:
                assert f"{MADE_BEFORE[previous]} {word}" in README, f"{command.text}: nothing makes {word}"
                continue
            if word.startswith(".venv/"):
                # Made by the README's own `python3 -m venv .venv` before it is used.
                assert "python3 -m venv .venv" in README, f"{command.text}: nothing makes {word}"
                continue
            if "/" in word or re.search(r"\.(sh|yml|yaml|csv|gz|py|toml|json)$", word):
                assert (command.directory / word).exists(), f"{command.text}: no {word}"

    @pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.text[:60])
    def test_every_variable_a_command_sets_is_documented_and_read(self, command):
        """Every variable a README command sets is in the variables table and read somewhere."""
        for name in command.variables:
            assert name in DOCUMENTED, f"{command.text}: {name} is not in the variables table"
            assert name in SOURCES, f"{command.text}: nothing reads {name}"

    @pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.text[:60])
    def test_every_endpoint_a_command_asks_for_is_documented(self, command):
        """Every endpoint a README command asks for is in the endpoints table."""
        for url in re.findall(r"https?://[^\s'\"]+", command.text):
            path = "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else "/"
            assert f"`GET {path}`" in README or path.startswith("/api/"), f"{command.text}: {path}"

    def test_the_load_generators_commands_are_ones_it_takes(self):
        """Every load generator command in the README parses with the load generator's own parser."""
        for command in named(LOADTEST):
            parse_arguments(arguments_after(command, LOADTEST))  # exits 2 on an unknown or bad option

    def test_the_backtest_commands_are_ones_it_takes(self):
        """Every backtest command in the README parses with the backtest's own parser."""
        cwd = Path.cwd()
        os.chdir(ROOT)  # the README's paths are the repository's
        try:
            for command in named(BACKTEST):
                backtest.parse_arguments(arguments_after(command, BACKTEST))
        finally:
            os.chdir(cwd)

    def test_the_deploy_scripts_options_are_its_own(self):
        """Every option the README passes to the deploy script is one it takes."""
        script = (ROOT / "deploy-autoscaling.sh").read_text()
        taken = set(re.findall(r"^\s+(--[a-z-]+)\)", script, re.MULTILINE))
        for command in named(("./deploy-autoscaling.sh",)):
            words = command.words[1:]
            for index, word in enumerate(words):
                if index and words[index - 1] in {"--backup", "--restore"}:
                    continue  # the file
                assert word in taken, f"{command.text}: {word} is not one of {sorted(taken)}"

    def test_the_local_swarm_commands_are_its_own(self):
        """Every local-swarm command and option in the README is one the script takes."""
        script = (ROOT / "local-swarm.sh").read_text()
        taken = set(re.findall(r"^\s+([a-z-]+)\)", script, re.MULTILINE))
        options = set(re.findall(r"^\s+(--[a-z-]+)\)", script, re.MULTILINE))
        commands = named(("./local-swarm.sh",))
        assert commands
        for command in commands:
            subcommand, *rest = command.words[1:]
            assert subcommand in taken, f"{command.text}: {subcommand} is not one of {sorted(taken)}"
            flags = [word for word in rest if word.startswith("--")]
            assert set(flags) <= options, f"{command.text}: {flags} are not among {sorted(options)}"

    def test_every_autoscaler_endpoint_in_the_table_is_served(self):
        """The autoscaler's endpoints in the table are exactly those it serves."""
        from autoscaler.api import routes  # noqa: PLC0415 - only this test needs the daemon's routes
        from autoscaler.records import DaemonState  # noqa: PLC0415 - as above

        served = set(routes(DaemonState, CollectorRegistry(), lambda: 0.0, 30, 90))
        documented = set(re.findall(r"^\| autoscaler `GET (\S+)`", README, re.MULTILINE))
        assert documented == served


def run(arguments: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        arguments,
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestReadmeCommandsRun:
    @pytest.mark.parametrize(
        "arguments",
        [
            [sys.executable, "-m", "loadtest", "--help"],
            [sys.executable, "-m", "autoscaler", "simulate", "--help"],
            ["./deploy-autoscaling.sh", "--help"],
            ["./local-swarm.sh", "--help"],
            ["./stress-test.sh", "--help"],
        ],
        ids=lambda arguments: " ".join(arguments[-3:]),
    )
    def test_each_commands_help(self, arguments):
        """Each command's --help runs and prints something."""
        result = run(arguments)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()

    def test_the_backtests_on_one_day_of_the_shipped_trace(self):
        """Each of the README's backtests runs on a day of the trace the repository ships."""
        commands = [command for command in named(BACKTEST) if "--trace" in command.words]
        assert len(commands) >= 2  # the algorithms compared, and a policy file's schedule
        for command in commands:
            words = arguments_after(command, BACKTEST)
            words[words.index("--start") + 1] = "1998-06-30 00:00:00"
            words[words.index("--end") + 1] = "1998-07-01 00:00:00"
            result = run([sys.executable, "-m", "autoscaler", "simulate", *words, "--json"])
            assert result.returncode == 0, result.stderr
            algorithm = words[words.index("--algorithm") + 1] if "--algorithm" in words else "predictive"
            assert f'"algorithm": "{algorithm}"' in result.stdout

    def test_a_registry_that_is_no_address_stops_the_deploy_before_anything_is_built(self):
        """A REGISTRY that is no address stops the deploy with exit 2, naming it, before anything is built."""
        result = run(["./deploy-autoscaling.sh"], REGISTRY="not a registry!")
        assert result.returncode == 2
        assert "REGISTRY=not a registry!" in result.stderr

    def test_down_of_a_stack_that_is_not_there_removes_nothing_and_succeeds(self):
        """--down of a stack that is not deployed succeeds and removes nothing."""
        result = run(["./deploy-autoscaling.sh", "--down"], STACK_NAME=f"readme-check-{os.getpid()}")
        assert result.returncode == 0, result.stderr
