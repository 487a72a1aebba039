"""Reading LoadGen's logs the way MLCommons' tools read them: a repeated key or sample counts once, first."""

from __future__ import annotations

import json

from mnv4suite import loadgen_log


def mllog(key: str, value, **metadata) -> str:
    return loadgen_log.MLLOG_PREFIX + json.dumps({"key": key, "value": value, "metadata": metadata}) + "\n"


def test_a_repeated_detail_key_keeps_its_first_value(tmp_path):
    (tmp_path / loadgen_log.DETAIL).write_text(
        mllog("result_validity", "VALID") + "not an MLLOG line\n" + mllog("result_validity", "INVALID")
        + mllog("error_invalid_config", "bad", is_error=True))
    detail = loadgen_log.read_detail(tmp_path)
    assert detail["result_validity"] == "VALID"
    assert detail["_errors"] == ["error_invalid_config: bad"]


def test_a_sample_logged_twice_keeps_its_first_payload(tmp_path):
    entries = [{"seq_id": 0, "qsl_idx": 3, "data": "0a0b"}, {"seq_id": 1, "qsl_idx": 1, "data": ""},
               {"seq_id": 2, "qsl_idx": 3, "data": "ffff"}]
    (tmp_path / loadgen_log.ACCURACY).write_text(json.dumps(entries))
    assert loadgen_log.read_accuracy_payloads(tmp_path) == {3: b"\x0a\x0b", 1: b""}
