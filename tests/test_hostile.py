"""Hostile and clumsy input, by class: each case gets one clear message, a non-zero exit where it is a
command, no traceback, and nothing already written is lost. Kept fast: most cases stop at planning."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnv4suite import results
from mnv4suite.config import RunConfig, read_yaml
from mnv4suite.errors import DataError, UserError
from mnv4suite.safeparse import load_json, load_yaml, printable


def no_traceback(run) -> None:
    assert "Traceback" not in run.stderr, run.stderr


# --------------------------------------------------------------------------- config files


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nbackend: *a8\n")
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"uses YAML aliases \(\*a0 at line 2\)"):
        read_yaml(tmp_path / "bomb.yaml")
    assert time.perf_counter() - start < 5


def test_deeply_nested_yaml_is_refused_quickly(tmp_path):
    (tmp_path / "deep.yaml").write_text("backend: " + "[" * 20000 + "]" * 20000 + "\n")
    start = time.perf_counter()
    with pytest.raises(UserError, match="nests more than 64 levels deep"):
        read_yaml(tmp_path / "deep.yaml")
    assert time.perf_counter() - start < 5


def test_config_files_that_are_not_text_or_not_files(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("task: imagenet\nout: r\xe9sultats\n".encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text"):
        read_yaml(tmp_path / "latin1.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(UserError, match="is a folder: give the YAML file itself"):
        read_yaml(tmp_path / "folder.yaml")
    (tmp_path / "big.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(UserError, match="more than the 1048576 allowed"):
        read_yaml(tmp_path / "big.yaml")


@pytest.mark.parametrize("values, message", [
    ({"data": 123}, "'data' must be text, not a number 123"),
    ({"task": ["imagenet"]}, "'task' must be text, not a list"),
    ({"scenario": None}, "'scenario' needs a value"),
    ({"preset": 5}, "'preset' must be text, not a number 5"),
    ({"task": None}, "'task' needs a value"),
    ({"backend": {"a": 1}}, "'backend' must be a name or a list of names"),
    ({"count": 2 ** 70}, "count must be a whole number from 1 to 10000000"),
    ({"count": True}, "count must be a whole number"),
    ({"out": "a\x00b"}, "'out' holds a NUL character"),
])
def test_wrongly_typed_config_values_are_named(values, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(**values)


# --------------------------------------------------------------------------- paths on the command line


def test_paths_that_are_the_wrong_kind_of_thing(run_cli, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "conf").mkdir()
    cases = [
        (["--out", "taken"], "--out taken: taken is a file, not a folder"),
        (["--cache-dir", "taken/cache"], "is a file, not a folder"),
        (["--weights", "ckpt"], "--weights ckpt is a folder: give the checkpoint file itself"),
        (["--config", "conf"], "is a folder: give the YAML file itself"),
    ]
    for extra, message in cases:
        run = run_cli("run", "--backend", "pytorch-cpu", "--model", "tiny-cnn", "--preset", "rapid", *extra)
        assert run.returncode != 0 and message in run.stderr, (extra, run.stderr)
        no_traceback(run)
    assert (tmp_path / "taken").read_text() == "keep me"


def test_info_refuses_impossible_resolutions(run_cli):
    for value in ("-5", "0", "100000"):
        run = run_cli("info", "tiny-cnn", "--resolution", value)
        assert run.returncode != 0 and "give an input size from 32 to 2048 pixels" in run.stderr, run.stderr
        no_traceback(run)


def test_validate_json_into_a_folder_is_refused_before_any_work(run_cli, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "out").mkdir()
    run = run_cli("validate", "sub", "--json", "out")
    assert run.returncode != 0 and "--json out is a folder: give a file name to write" in run.stderr
    no_traceback(run)


# --------------------------------------------------------------------------- untrusted files


def test_untrusted_json_limits():
    with pytest.raises(ValueError, match="nests too deep to read"):
        load_json("[" * 100000 + "]" * 100000, "x.json")
    with pytest.raises(ValueError, match="nests 65\\+ levels deep"):
        load_json("[" * 65 + "]" * 65, "x.json")
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="is not a number JSON allows"):
            load_json(f'{{"top1": {constant}}}', "x.json")
    with pytest.raises(ValueError, match="more than the 10 allowed"):
        load_json("[1, 2, 3, 4, 5]", "x.json", max_bytes=10)
    assert load_json('{"a": [1, {"b": "[[[["}]}', "x.json") == {"a": [1, {"b": "[[[["}]}


def test_untrusted_yaml_limits():
    with pytest.raises(ValueError, match="uses YAML aliases"):
        load_yaml("a: &x [1]\nb: *x\n", "s.yaml")
    with pytest.raises(ValueError, match="nests more than 64 levels deep"):
        load_yaml("a: " + "[" * 70 + "]" * 70, "s.yaml")
    assert load_yaml("a: [1, {b: c}]\n", "s.yaml") == {"a": [1, {"b": "c"}]}


def test_terminal_escapes_are_shown_not_obeyed():
    assert printable("run\x1b[2J\x1b]0;owned\x07.json") == "run\\x1b[2J\\x1b]0;owned\\x07.json"
    assert printable("a\u202eb\rc") == "a\\u202eb\\rc"
    assert printable("line one\nline two") == "line one\nline two"
    assert printable("x" * 500).endswith("(200 more characters)")


def test_one_deep_result_rejects_its_submission_and_nothing_else(tmp_path):
    from mnv4suite.reports import submission as subs

    bad = tmp_path / "bad" / "run" / "job"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text("[" * 50000 + "]" * 50000)
    (tmp_path / "bad" / "submission.yaml").write_text("a: " + "[" * 100 + "]" * 100)
    (tmp_path / "bad" / "run" / "evil\x1b[2Jname").mkdir()
    verdict = subs.validate_submission(tmp_path / "bad", subs.RULES["development"])
    text = "\n".join(verdict.all_reasons())
    assert not verdict.accepted
    assert "nests too deep to read" in text and "nests more than 64 levels deep" in text
    rendered = subs.render_verdicts([verdict])
    assert "\x1b" not in rendered


def test_impossible_figures_in_a_result_are_refused(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import sample_result

    for value in (float("nan"), 150.0, -3.0):
        result = sample_result()
        result["accuracy"] = {"kind": "measured", "samples": 10, "metrics": {"top1": value}}
        assert results.schema_errors(result), value
    path = tmp_path / "result.json"
    path.write_text(json.dumps(sample_result()).replace("{", '{"x": NaN, ', 1))
    with pytest.raises(UserError, match="NaN is not a number JSON allows"):
        results.read(path)


# --------------------------------------------------------------------------- data and weights


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from mnv4suite.tasks.common.images import open_rgb

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    pixels = np.asarray(open_rgb(tmp_path / "ramp.png"))
    assert pixels.dtype == np.uint8 and pixels.shape == (64, 64, 3)
    np.testing.assert_array_equal(pixels[..., 0], (ramp >> 8).astype(np.uint8))
    assert 0 < pixels.mean() < 255  # the old conversion made nearly every pixel 255
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "float.tiff")
    with pytest.raises(DataError, match="float.tiff holds floating-point pixels"):
        open_rgb(tmp_path / "float.tiff")


def test_nan_weights_are_refused_by_tensor_name(tmp_path):
    torch = pytest.importorskip("torch")
    from mnv4suite.reference_models.weights import load_state_dict

    state = {"conv.weight": torch.ones(4, 3, 3, 3), "conv.bias": torch.tensor([0.0, float("nan"), 1.0, 2.0])}
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(UserError, match=r"NaN or infinite values in 1 tensor\(s\): conv.bias \(1 of 4\)"):
        load_state_dict(tmp_path / "w.pth")


def test_a_model_answering_nan_fails_its_job_by_name(run_cli, tmp_path, image_folder):
    """Finite but huge weights overflow to inf and NaN inside the model: no silent 'complete' result."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parent / "plugins"))
    import tinynet

    module = tinynet.build("tiny-cnn")
    torch.save({k: torch.full_like(v, 1e30) if v.is_floating_point() else v for k, v in module.state_dict().items()},
               tmp_path / "huge.pth")
    run = run_cli("run", "--backend", "pytorch-cpu,onnxruntime-cpu", "--model", "tiny-cnn", "--mode", "accuracy",
                  "--data", str(image_folder), "--weights", "huge.pth", "--out", "out")
    assert run.returncode != 0
    # PyTorch checks its rewrite on a seeded input first; ONNX Runtime's answers are counted during the test
    assert "the BN-folded model of tiny-cnn computes NaN or infinite logits on a seeded check input" in run.stderr
    assert "samples got NaN or infinite outputs from onnxruntime-cpu: its numerics are broken" in run.stderr
    assert not list((tmp_path / "out").rglob("result.json"))
    no_traceback(run)


# --------------------------------------------------------------------------- caches and disks


def test_an_unwritable_artifact_cache_still_serves_and_builds(tmp_path, capsys):
    from mnv4suite.cache import ArtifactCache

    good = ArtifactCache(tmp_path / "cache")
    key = {"model": "m", "precision": "fp32"}
    path, digest, cached = good.fetch_or_build(key, ".bin", lambda tmp: tmp.write_bytes(b"model"))
    assert not cached
    os.chmod(path.parent, 0o555)  # a hit needs no write (not even the lock file); root ignores modes anyway
    try:
        again, digest2, cached = ArtifactCache(tmp_path / "cache").fetch_or_build(key, ".bin", pytest.fail)
        assert cached and again == path and digest2 == digest
    finally:
        os.chmod(path.parent, 0o755)
    (tmp_path / "a-file").write_text("")
    blocked = ArtifactCache(tmp_path / "a-file" / "cache")  # cannot be created at all
    built, _, cached = blocked.fetch_or_build(key, ".bin", lambda tmp: tmp.write_bytes(b"model"))
    assert not cached and built.read_bytes() == b"model"
    err = capsys.readouterr().err
    assert "cannot be written" in err and "not kept for the next run" in err


# --------------------------------------------------------------------------- logs, figures and files from elsewhere


def test_a_hostile_loadgen_log_is_refused_by_name(tmp_path):
    """A submission's logs are anyone's: an entry of the wrong shape is a ValueError naming the line."""
    from mnv4suite import compliance, loadgen_log

    (tmp_path / loadgen_log.DETAIL).write_text(':::MLLOG {"key": "x", "value": 1, "metadata": "s"}\n')
    with pytest.raises(ValueError, match="line 1 is not a LoadGen MLLOG entry"):
        loadgen_log.read_detail(tmp_path)
    for entries in ('[{"qsl_idx": Infinity, "data": "00"}]', '[{"qsl_idx": "3", "data": "00"}]', '{"a": 1}'):
        (tmp_path / loadgen_log.ACCURACY).write_text(entries)
        with pytest.raises(ValueError, match=r"mlperf_log_accuracy.json"):
            loadgen_log.read_accuracy_payloads(tmp_path)
    with pytest.raises(ValueError, match="not a number of nanoseconds"):
        loadgen_log.latency_figures({"effective_scenario": "Offline", "result_mean_latency_ns": "fast"})
    zero = {"effective_scenario": "SingleStream", "result_validity": "VALID", "early_stopping_latency_ss": 0}
    assert compliance.verify_performance(zero, zero, "TEST04")[0].startswith("TEST FAIL: reference")


def test_whatever_a_submission_provokes_rejects_it_and_nothing_else(tmp_path, monkeypatch):
    from mnv4suite.reports import submission as subs

    def provoked(path, rules):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(subs, "_validate_submission", provoked)
    verdict = subs.validate_submission(tmp_path, subs.RULES["development"])
    assert not verdict.accepted and "ZeroDivisionError: float division by zero" in "\n".join(verdict.all_reasons())


def test_an_integer_longer_than_any_figure_is_refused_by_file():
    with pytest.raises(ValueError, match="x.json: an integer of 400 digits is no figure"):
        load_json('{"p90_ms": ' + "9" * 400 + "}", "x.json")
    assert load_json("[-" + "9" * 300 + "]", "x.json")[0] == -int("9" * 300)


def test_a_sparse_or_quantized_checkpoint_is_no_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    from mnv4suite.reference_models.weights import load_state_dict

    torch.save({"conv.weight": torch.eye(2).to_sparse()}, tmp_path / "sparse.pth")
    with pytest.raises(UserError, match="holds no state dict of tensors"):
        load_state_dict(tmp_path / "sparse.pth")


def test_an_oversized_annotation_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from mnv4suite.tasks.coco import instances

    monkeypatch.setattr(instances, "MAX_ANNOTATION_BYTES", 100)
    (tmp_path / "instances.json").write_bytes(b" " * 101)
    with pytest.raises(DataError, match="is larger than"):
        instances.load(tmp_path / "instances.json")


@pytest.mark.parametrize("error_file", [b"oops", b"[]", b"[" * 100000, b'{"message": 3}'])
def test_an_error_file_that_says_nothing_still_fails_its_job_clearly(tmp_path, error_file):
    """In a lab error.json is a file another machine sent: whatever it holds, the job fails with a reason."""
    from mnv4suite.runner import read_outcome

    (tmp_path / "error.json").write_bytes(error_file)
    outcome = read_outcome(job=None, job_dir=tmp_path)
    assert outcome.error["kind"] == "UnreadableError" and "cannot say why" in outcome.error["message"]
    assert outcome.error["user_error"] is False
