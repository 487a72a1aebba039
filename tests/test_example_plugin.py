"""The example third-party plugin, installed the way a vendor's package is, then used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, make_image_folder

EXAMPLE = REPO / "examples" / "mnv4suite-example-plugin"
IMAGENETTE = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
              "n03394916", "n03417042", "n03425413", "n03445777", "n03888605"]


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example's README install command, word for word, from where it says to run it (the repository
    root), in a fresh virtual environment that sees the suite's; returns that environment's site-packages."""
    from test_readme_commands import shell_commands

    [command] = [c for c in shell_commands(EXAMPLE / "README.md") if c.startswith("pip install")]
    import site
    import sysconfig

    venv = tmp_path_factory.mktemp("example-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    [new_site] = (venv / "lib").glob("python*/site-packages")
    # the new environment sees this one's packages (the suite, torch), .pth hooks included, as a user's
    # environment with the suite installed would: pip then installs the plugin alone
    parents = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (new_site / "_suite_env.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in dict.fromkeys(parents)))
    proc = subprocess.run([str(venv / "bin" / "pip"), *command.split()[1:], "--quiet"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"`{command}` failed:\n{proc.stderr}"
    return new_site


@pytest.fixture
def example_env(suite_env, installed_example) -> dict[str, str]:
    env = dict(suite_env)
    env["PYTHONPATH"] = os.pathsep.join([str(installed_example), env["PYTHONPATH"]])
    return env


def test_example_shows_up_in_listing(run_cli, example_env):
    result = run_cli("list", env=example_env)
    assert result.returncode == 0, result.output
    backend = next(line for line in result.stdout.splitlines() if line.startswith("acme-torchexport-cpu"))
    assert "mnv4suite-example-plugin 0.1.0" in backend and " yes " in backend
    assert any(line.startswith("imagenette") for line in result.stdout.splitlines())


def test_example_backend_and_task_run(run_cli, example_env, tmp_path):
    data = make_image_folder(tmp_path / "imagenette" / "val", IMAGENETTE, per_class=2)
    result = run_cli("run", "--task", "imagenette", "--backend", "acme-torchexport-cpu", "--model", "tiny-cnn",
                     "--preset", "rapid", "--data", str(data), env=example_env)
    assert result.returncode == 0, result.output
    from mnv4suite import results

    [path] = sorted((tmp_path / "mnv4suite-results").glob("*/*/result.json"))
    res = results.read(path)
    assert res["task"]["id"] == "imagenette" and res["accuracy"]["samples"] == 20
    assert res["backend"]["provider"] == "mnv4suite-example-plugin 0.1.0"
    assert res["backend"]["artifact"]["kind"] == "torch.export"
    assert res["suite"]["plugins"]["acme"] == "mnv4suite-example-plugin 0.1.0"


def test_without_the_plugin_its_names_are_unknown(run_cli):
    result = run_cli("run", "--task", "imagenette", "--preset", "rapid")
    assert result.returncode == 2 and "unknown task 'imagenette'" in result.stderr
