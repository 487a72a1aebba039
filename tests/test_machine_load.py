"""Whether the machine was quiet while LoadGen timed a test: /proc arithmetic, and a real busy run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mnv4suite import machine_load, results
from mnv4suite.machine_load import Snapshot

TICKS = 100  # SC_CLK_TCK on Linux


def snap(wall, busy, own, steal=0, total=None, load=(0.1, 0.2, 0.3), cpu_stall_s=None, io_stall_s=None):
    return Snapshot(wall_s=wall, busy_ticks=busy, steal_ticks=steal, total_ticks=busy + 1000 if total is None else total, own_ticks=own,
                    load_average=load, cpu_stall_us=None if cpu_stall_s is None else int(cpu_stall_s * 1e6),
                    io_stall_us=None if io_stall_s is None else int(io_stall_s * 1e6))


def test_the_worker_s_own_cpu_is_not_competition():
    # 10 s: the machine was busy for 20 core-seconds, all of it the worker's own two threads
    found = machine_load.compare(snap(0, 0, 0), snap(10, 20 * TICKS, 20 * TICKS), cores=2)
    assert found["quiet"] is True and found["reasons"] == [] and found["other_cpu_cores"] == 0


def test_another_process_on_a_core_makes_the_test_busy():
    found = machine_load.compare(snap(0, 0, 0), snap(10, 30 * TICKS, 20 * TICKS, load=(2.5, 1.0, 0.5)), cores=2)
    assert found["quiet"] is False and found["other_cpu_cores"] == 1.0
    assert found["reasons"] == ["other processes used 1.00 of 2 cores on average (limit 0.25)"]
    assert found["load_average_after"] == [2.5, 1.0, 0.5]


def test_steal_time_makes_the_test_busy():
    found = machine_load.compare(snap(0, 0, 0, total=0), snap(10, 10 * TICKS, 10 * TICKS, steal=200, total=2000),
                                 cores=2)
    assert found["quiet"] is False and found["steal_fraction"] == 0.1 and "stole 10%" in found["reasons"][0]


def test_tasks_waiting_make_the_test_busy_when_cpu_time_does_not():
    """The case CPU time misses: others took 0.17 cores while the load average was 5 on 2 cores (tasks
    waiting), and PyTorch ran 1.4-2x slow. The pressure-stall counters see the waiting."""
    found = machine_load.compare(snap(0, 0, 0, cpu_stall_s=100.0, io_stall_s=50.0),
                                 snap(10, 21.7 * TICKS, 20 * TICKS, load=(5.0, 2.6, 1.5), cpu_stall_s=104.0, io_stall_s=52.0),
                                 cores=2)
    assert found["other_cpu_cores"] == 0.17 and found["cpu_pressure"] == 0.4 and found["io_pressure"] == 0.2
    assert found["quiet"] is False
    assert found["reasons"] == ["tasks waited for a CPU 40% of the time (limit 10%)",
                                "tasks waited for I/O 20% of the time (limit 10%)"]
    # the suite's own threads wait a little in every test: that is not competition
    quiet = machine_load.compare(snap(0, 0, 0, cpu_stall_s=100.0, io_stall_s=0.0),
                                 snap(10, 20 * TICKS, 20 * TICKS, cpu_stall_s=100.2, io_stall_s=0.0), cores=2)
    assert quiet["quiet"] is True and quiet["cpu_pressure"] == 0.02
    # without pressure counters only CPU time and steal are judged, and the result says nothing of pressure
    plain = machine_load.compare(snap(0, 0, 0), snap(10, 20 * TICKS, 20 * TICKS), cores=2)
    assert "cpu_pressure" not in plain and "io_pressure" not in plain


def test_without_proc_the_load_is_unknown(tmp_path):
    assert machine_load.snapshot(tmp_path) is None
    assert machine_load.compare(None, None)["quiet"] is None


def test_snapshot_reads_proc(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "stat").write_text("cpu  100 5 50 1000 10 1 2 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    fields = ["S"] + ["0"] * 10 + ["11", "12", "13", "14"] + ["0"] * 30  # utime..cstime are fields 14-17
    (tmp_path / "self" / "stat").write_text("4242 (python (odd) name) " + " ".join(fields))
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 1/123 4242\n")
    found = machine_load.snapshot(tmp_path)
    assert found.busy_ticks == 100 + 5 + 50 + 1 + 2 and found.steal_ticks == 7 and found.total_ticks == 1175
    assert found.own_ticks == 11 + 12 + 13 + 14 and found.load_average == (0.5, 0.4, 0.3)
    assert found.cpu_stall_us is None and found.io_stall_us is None  # a kernel without pressure counters
    (tmp_path / "pressure").mkdir()
    (tmp_path / "pressure" / "cpu").write_text("some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\n"
                                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    (tmp_path / "pressure" / "io").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=789\n")
    found = machine_load.snapshot(tmp_path)
    assert (found.cpu_stall_us, found.io_stall_us) == (123456, 789)


BURNER = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"


def test_a_run_beside_a_cpu_hog_is_marked_busy(run_cli, tmp_path):
    hog = subprocess.Popen([sys.executable, "-c", BURNER])  # one core, stops by itself within a minute
    try:
        run = run_cli("run", "--backend", "onnxruntime-cpu", "--model", "tiny-cnn", "--preset", "rapid",
                      "--cooldown", "0.5")
    finally:
        hog.kill()
        hog.wait()
    assert run.returncode == 0, run.output
    assert "warning: the machine was busy while LoadGen timed it (other processes used" in run.stderr
    assert "BUSY machine: other processes used" in run.stderr and "cooling down for 0.5 s" in run.stderr
    [path] = Path(tmp_path, "mnv4suite-results").glob("*/*/result.json")
    load = results.read(path)["machine_load"]
    assert load["quiet"] is False and load["other_cpu_cores"] > 0.5 and load["cooldown_s"] == 0.5
    if "cpu_pressure" in load:  # a kernel with pressure counters sees the hog's waiting too
        assert load["cpu_pressure"] > machine_load.PRESSURE_LIMIT
