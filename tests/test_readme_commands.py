"""Every command the READMEs and docs show, checked against the CLI they run, and the cheap ones run as
written. A README that drifts from the code is a bug a new user meets first."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "docs" / "lab.md", REPO / "examples" / "mnv4suite-example-plugin" / "README.md"]
#: Subcommands whose own subcommands take options (``lab join --head``).
NESTED = {"lab"}


def shell_commands(path: Path) -> list[str]:
    """The commands of a file's ```bash blocks: continuation lines joined, comments dropped, `&&` split."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out += [part.strip() for part in line.split("&&")]
    return out


def suite_commands() -> list[tuple[str, list[str]]]:
    """(file, argv after `mnv4suite`) of every mnv4suite command, however it is spelled (.venv/bin/...)."""
    found = []
    for path in DOCS:
        for command in shell_commands(path):
            argv = shlex.split(command.replace("$(", "").replace(")", ""))
            for i, word in enumerate(argv):
                if word.endswith("mnv4suite") and not word.startswith(("./", "'")) and "/" not in word.replace(".venv/bin/", ""):
                    found.append((path.name, argv[i + 1:]))
                    break
    return found


@lru_cache(maxsize=None)
def help_text(*subcommand: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mnv4suite", *subcommand, "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (subcommand, proc.stderr)
    return proc.stdout


def test_the_docs_show_the_commands_this_test_checks():
    commands = suite_commands()
    assert len(commands) >= 25
    assert {argv[0] for _, argv in commands} >= {"run", "list", "info", "report", "validate", "leaderboard", "lab"}


@pytest.mark.parametrize(("where", "argv"), suite_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_documented_subcommand_and_option_exists(where, argv):
    sub = argv[:2] if argv and argv[0] in NESTED and len(argv) > 1 and not argv[1].startswith("-") else argv[:1]
    text = help_text(*sub)
    for option in (word.split("=")[0] for word in argv if word.startswith("--")):
        if option == "--help":
            continue
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), f"{where}: `mnv4suite {' '.join(argv)}` uses {option}"


def test_every_documented_script_and_file_exists():
    for path in DOCS:
        for command in shell_commands(path):
            for word in shlex.split(command):
                if word.startswith(("benchmarks/", "./examples/", "examples/")) or word == "constraints.txt":
                    assert (REPO / word).exists(), f"{path.name}: `{command}` names {word}, which does not exist"


@pytest.mark.parametrize("argv", [["list"], ["list", "backends"], ["info", "mnv4-hybrid-m"], ["run", "--help"]])
def test_the_cheap_readme_commands_run_as_written(argv, suite_env, tmp_path):
    assert (REPO.name, argv) and argv in [a for _, a in suite_commands()], "the README shows it"
    proc = subprocess.run([sys.executable, "-m", "mnv4suite", *argv], env=suite_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
