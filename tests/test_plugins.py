"""Discovery: built-ins register like third-party plugins, and nothing heavy is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnv4suite.api import Availability, BackendSpec, ModelSpec, Requirement, hookimpl
from mnv4suite.errors import UnknownNameError, UserError
from mnv4suite.plugin_manager import BUILTIN_PLUGINS, create_plugin_manager
from mnv4suite.registry import build_registry

HEAVY = ("torch", "tensorflow", "onnxruntime", "onnx", "PIL", "mlperf_loadgen", "jsonschema", "ray")


def test_listing_imports_no_framework(suite_env):
    code = (
        "import sys; from mnv4suite.cli import main; main(['list']);"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=suite_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_builtins_are_registered_through_the_hooks():
    pm = create_plugin_manager(load_entrypoints=False)
    assert {pm.get_name(p) for p in pm.get_plugins()} == set(BUILTIN_PLUGINS)
    registry = build_registry(pm)
    assert {"pytorch-cpu", "onnxruntime-cpu"} <= set(registry.backends.items)
    assert "imagenet" in registry.tasks
    assert registry.backends.providers["pytorch-cpu"] == "mnv4suite.plugins.pytorch"


class DuplicatePlugin:
    @hookimpl
    def register_backends(self):
        return [BackendSpec(id="pytorch-cpu", framework="x", delegate="cpu", precision="fp32", hardware="host-cpu",
                            implementation="x:Y")]


def test_two_plugins_with_one_id_are_both_named():
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(DuplicatePlugin(), name="vendor-dup")
    with pytest.raises(UserError, match="provided by two plugins: 'mnv4suite.plugins.pytorch' and 'vendor-dup'"):
        build_registry(pm)


def test_unknown_name_lists_known_and_nearest():
    registry = build_registry(create_plugin_manager(load_entrypoints=False))
    with pytest.raises(UnknownNameError) as info:
        registry.backends.get("pytorch-cpx")
    assert info.value.suggestion == "pytorch-cpu"
    assert "onnxruntime-cpu" in str(info.value)


def test_missing_requirement_explains_the_fix():
    spec = BackendSpec(id="x", framework="x", delegate="npu", precision="int8", hardware="h", implementation="x:Y",
                       requires=(Requirement("no_such_runtime_pkg", "pip install no-such-runtime"),))
    found = spec.probe()
    assert not found
    assert "no_such_runtime_pkg" in found.explain() and "pip install no-such-runtime" in found.explain()


def test_packages_one_install_brings_are_named_together_with_it_once():
    from mnv4suite.api import check_requirements

    found = check_requirements([Requirement("no_such_a", "pip install ab"), Requirement("no_such_b", "pip install ab"),
                                Requirement("no_such_c", "pip install c"), Requirement("numpy", "pip install ab")])
    assert found.reasons == ("Python packages 'no_such_a' and 'no_such_b' are not installed (pip install ab)",
                             "Python package 'no_such_c' is not installed (pip install c)")


def test_probe_hook_runs_after_requirements():
    spec = BackendSpec(id="x", framework="x", delegate="tpu", precision="int8", hardware="h", implementation="x:Y",
                       probe_hook=lambda: Availability.missing("no device node /dev/apex_0"))
    assert spec.probe().reasons == ("no device node /dev/apex_0",)


def test_plugin_module_from_environment_must_import(monkeypatch):
    monkeypatch.setenv("MNV4SUITE_PLUGINS", "no_such_plugin_module")
    with pytest.raises(UserError, match="cannot import plugin module 'no_such_plugin_module'"):
        create_plugin_manager()


def test_model_aliases_resolve():
    pm = create_plugin_manager(load_entrypoints=False)

    class Aliased:
        @hookimpl
        def register_models(self):
            return [ModelSpec(id="m-one", builder="x:y", resolution=8, aliases=("legacy_name",))]

    pm.register(Aliased(), name="aliased")
    assert build_registry(pm).models.get("legacy_name").id == "m-one"


def test_default_run_takes_reference_models_not_baselines():
    from mnv4suite.config import RunConfig
    from mnv4suite.runner import plan

    registry = build_registry(create_plugin_manager(load_entrypoints=False))
    chosen = {job.model for job in plan(RunConfig(backend=["pytorch-cpu"], preset="rapid"), registry).jobs}
    assert chosen == {"mnv4-conv-s", "mnv4-conv-m", "mnv4-conv-l", "mnv4-hybrid-m", "mnv4-hybrid-l"}
    named = plan(RunConfig(backend=["pytorch-cpu"], model=["mnv2-1.0"], preset="rapid"), registry)
    assert [job.model for job in named.jobs] == ["mnv2-1.0"]


def test_unsupported_pairs_are_skipped_with_the_reason():
    from mnv4suite.config import RunConfig
    from mnv4suite.runner import plan

    registry = build_registry(create_plugin_manager(load_entrypoints=False))
    run = plan(RunConfig(backend=["tflite-cpu", "pytorch-cpu"], model=["mnv2-1.0", "mnv4-conv-s"], preset="rapid"), registry)
    assert sorted(job.name for job in run.jobs) == [
        "imagenet__mnv2-1.0__pytorch-cpu__SingleStream",
        "imagenet__mnv4-conv-s__pytorch-cpu__SingleStream",
        "imagenet__mnv4-conv-s__tflite-cpu__SingleStream",
    ]
    assert "no Keras twin" in run.skipped_pairs[("mnv2-1.0", "tflite-cpu")]
