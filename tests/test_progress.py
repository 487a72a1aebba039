"""Progress of long steps: a closing line per step with its seconds and its count, terminal or not."""

from __future__ import annotations

import io

from mnv4suite.progress import Steps


def test_each_step_ends_with_one_line_saying_how_long_and_how_many():
    stream = io.StringIO()  # not a terminal: no live bar, only the closing lines
    steps = Steps("int8 TFLite of tiny", stream)
    with steps.step("export"):
        pass
    with steps.step("calibration, samples", total=3) as running:
        for _ in range(3):
            running.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("  int8 TFLite of tiny: export took ") and lines[0].endswith(" s")
    assert lines[1].startswith("  int8 TFLite of tiny: calibration, samples (3 of 3) took ")
    assert len(lines) == 2 and set(steps.seconds) == {"export", "calibration, samples"}
