"""Run configuration from flags and YAML: merging and clear errors."""

from __future__ import annotations

import pytest

from mnv4suite.config import RunConfig, build_config, read_yaml
from mnv4suite.errors import UnknownNameError, UserError


def test_yaml_values_are_overridden_by_flags(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: imagenet\nbackend: [pytorch-cpu, onnxruntime-cpu]\npreset: quick\nmodel: mnv4-conv-s\n")
    config = build_config(read_yaml(cfg), {"preset": "rapid", "backend": None})
    assert config.preset == "rapid"
    assert config.backend == ["pytorch-cpu", "onnxruntime-cpu"]
    assert config.model == ["mnv4-conv-s"]


def test_comma_separated_names_split():
    assert RunConfig(backend=["a,b", "c"]).backend == ["a", "b", "c"]


def test_mode_defaults_follow_data():
    assert RunConfig().mode == "performance"
    assert RunConfig(data="/x").mode == "both"


def test_accuracy_without_data_is_refused():
    with pytest.raises(UserError, match="needs a dataset"):
        RunConfig(mode="accuracy")


def test_unknown_preset_and_scenario_name_the_valid_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'quick'"):
        RunConfig(preset="quik")
    with pytest.raises(UnknownNameError, match="SingleStream"):
        RunConfig(scenario="server")
    assert RunConfig(scenario="offline").scenario == "Offline"


@pytest.mark.parametrize(("text", "line"), [
    ("task: imagenet\nbackend: [pytorch-cpu\npreset: rapid\n", 2),  # unclosed bracket: YAML trips on line 3
    ('task: imagenet\nmodel: "mnv4-conv-s\npreset: rapid\nx: 1\n', 2),  # unclosed quote: it trips at the end
    ("task: imagenet\n  model: x\npreset: rapid\n", 2),  # bad indentation
])
def test_malformed_yaml_names_file_and_the_line_of_the_mistake(tmp_path, text, line):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(UserError, match=r"bad.yaml is not valid YAML: ") as info:
        read_yaml(cfg)
    first_place = str(info.value).split("at line ", 1)[1]  # the first place named is the mistake's
    assert first_place.startswith(f"{line}, column"), str(info.value)


def test_unknown_yaml_key_suggests_the_right_one(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("backends: pytorch-cpu\n")
    with pytest.raises(UserError, match="unknown option 'backends'. Did you mean 'backend'"):
        read_yaml(cfg)


def test_yaml_that_is_not_a_mapping(tmp_path):
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a mapping"):
        read_yaml(cfg)


def test_scenarios_threads_and_cooldown_are_checked():
    assert RunConfig(scenario=["offline", "SingleStream", "Offline"]).scenarios == ["Offline", "SingleStream"]
    assert RunConfig(scenario="SingleStream,Offline").scenarios == ["SingleStream", "Offline"]
    assert RunConfig(threads=4).threads == 4 and RunConfig(cooldown=2.5).cooldown == 2.5
    for bad in (0, -1, 2000, True, "4", 1.5):
        with pytest.raises(UserError, match="threads must be a whole number from 1 to 1024"):
            RunConfig(threads=bad)
    for bad in (-1, 4000, float("nan"), "5", True):
        with pytest.raises(UserError, match="cooldown must be a number of seconds"):
            RunConfig(cooldown=bad)


def test_count_without_data_is_refused():
    """Without a dataset the run times generated inputs, of which --count would pick nothing."""
    with pytest.raises(UserError, match=r"--count 5 picks samples of a dataset, and no --data was given"):
        RunConfig(count=5)
    assert RunConfig(count=5, data="/some/folder").count == 5


def test_everything_missing_for_a_plan_is_named_in_one_message_with_one_install_command():
    from mnv4suite import runner
    from mnv4suite.api import Availability, install_command
    from mnv4suite.errors import UnavailableError

    class Task:
        id = "coco"

        def probe(self):
            return Availability.missing(f"Python package 'pycocotools' is not installed ({install_command('coco')})")

    class Registry:
        class backends:  # noqa: N801 - stands in for the registry's collection
            get = staticmethod(lambda backend_id: type("Spec", (), {"id": backend_id}))

    class NothingInstalled:
        def requirements(self, backend):
            return Availability.missing(
                f"Python package 'tensorflow' is not installed ({install_command('torch', 'tf')})",
                f"Python package 'ai_edge_litert' is not installed ({install_command('torch', 'tf')})")

    config = RunConfig(task="coco", backend=["tflite-edgetpu", "tflite-gpu"])
    with pytest.raises(UnavailableError) as info:
        runner._check_installed(config, Registry, Task(), NothingInstalled())
    message = str(info.value)
    for what in ("task 'coco'", "backend 'tflite-edgetpu'", "backend 'tflite-gpu'", "pycocotools", "ai_edge_litert"):
        assert what in message
    assert message.endswith("install it all with: pip install -c constraints.txt 'mnv4suite[coco,tf,torch]'")
