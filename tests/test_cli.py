"""The command line as a user meets it: listings, help, and clear answers to bad input."""

from __future__ import annotations

import pytest


def assert_user_error(result, *fragments: str) -> None:
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_list_shows_every_section(run_cli):
    result = run_cli("list")
    assert result.returncode == 0, result.output
    for section in ("BACKENDS", "TASKS", "MODELS", "DEVICES"):
        assert section in result.stdout
    for name in ("pytorch-cpu", "onnxruntime-cpu", "imagenet", "tiny-cnn", "pixel8_edgetpu"):
        assert name in result.stdout


def test_list_backends_says_available(run_cli):
    result = run_cli("list", "backends")
    line = next(line for line in result.stdout.splitlines() if line.startswith("pytorch-cpu"))
    assert " yes " in line


def test_help_explains_run(run_cli):
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for flag in ("--task", "--backend", "--model", "--preset", "--scenario", "--mode", "--data", "--weights", "--out", "--config"):
        assert flag in result.stdout
    assert "rapid" in result.stdout and "examples:" in result.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--backend", "onnxruntime-cpx"], ["unknown backend 'onnxruntime-cpx'", "Did you mean 'onnxruntime-cpu'", "pytorch-cpu"]),
        (["--task", "imagnet"], ["unknown task 'imagnet'", "Did you mean 'imagenet'"]),
        (["--model", "mnv4-conv-xl"], ["unknown model 'mnv4-conv-xl'", "tiny-cnn"]),
        (["--preset", "fast"], ["unknown preset 'fast'", "normal", "quick", "rapid"]),
        (["--model", "tiny-cnn", "--data", "does/not/exist"], ["data path does/not/exist does not exist"]),
        (["--model", "tiny-cnn", "--mode", "accuracy"], ["needs a dataset", "--data"]),
        (["--model", "tiny-cnn", "--weights", "nope.safetensors"], ["weights file nope.safetensors does not exist"]),
        (["--model", "tiny-cnn", "--backend", "tflite-cpu"], ["tflite-cpu x tiny-cnn: no Keras twin for 'tiny-cnn'"]),
    ],
)
def test_bad_names_and_paths_get_clear_errors(run_cli, args, fragments):
    assert_user_error(run_cli("run", "--preset", "rapid", *args) if "--preset" not in args else run_cli("run", *args), *fragments)


def test_malformed_yaml_config(run_cli, tmp_path):
    (tmp_path / "run.yaml").write_text("task: imagenet\nbackend: [pytorch-cpu\n")
    assert_user_error(run_cli("run", "--config", "run.yaml"), "run.yaml is not valid YAML", "at line 2, column 10")


def test_missing_config_file(run_cli):
    assert_user_error(run_cli("run", "--config", "nowhere.yaml"), "config file nowhere.yaml does not exist")


def test_corrupt_jpeg_is_named_and_nothing_is_reported_complete(run_cli, image_folder):
    broken = image_folder / "n00000001" / "img_1_2.JPEG"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated
    result = run_cli("run", "--model", "tiny-cnn", "--backend", "pytorch-cpu", "--preset", "rapid", "--data", str(image_folder))
    assert_user_error(result, "img_1_2.JPEG")
    assert "result files" not in result.stderr or "0 of" in result.stderr


def test_no_subcommand_prints_help(run_cli):
    result = run_cli()
    assert result.returncode == 0 and "run" in result.stdout and "list" in result.stdout


def test_info_prints_size_and_layer_table(run_cli):
    result = run_cli("info", "mobilenetv4_conv_small")
    assert result.returncode == 0, result.output
    assert "mnv4-conv-s" in result.stdout and "3,774,024" in result.stdout
    assert "0.186 G" in result.stdout
    assert "blocks.2.0.dw_mid.conv" in result.stdout and "MACs/byte" in result.stdout


def test_info_unknown_model(run_cli):
    assert_user_error(run_cli("info", "mnv4-conv-xs"), "unknown model 'mnv4-conv-xs'", "Did you mean")


@pytest.mark.parametrize("command", [["report", "--out", "out"], ["leaderboard", "subs", "--out", "site"]])
def test_report_commands_name_the_missing_extra(command, monkeypatch, capsys, tmp_path):
    from mnv4suite import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "REPORT_REQUIRES", ("matplotlib", "no_such_plotting_package"))
    assert cli.main(command) != 0
    err = capsys.readouterr().err
    assert "no_such_plotting_package" in err and "pip install -c constraints.txt 'mnv4suite[report]'" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
