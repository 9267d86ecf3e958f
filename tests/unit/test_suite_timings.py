"""scripts/suite_timings.py: steps, task times and Cassandra starts read from Molecule's output."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "suite_timings.py"
spec = importlib.util.spec_from_file_location("suite_timings", SCRIPT)
assert spec and spec.loader
suite_timings = importlib.util.module_from_spec(spec)
sys.modules["suite_timings"] = suite_timings
spec.loader.exec_module(suite_timings)

E = "\x1b"


def profile(clock: str, prev: str, total: str) -> str:
    """A profile_tasks line as Molecule prints it (in its box, coloured)."""
    return f"  {E}[2m│{E}[0m Tuesday 01 December 2026  {clock} +0000 ({prev})       {total}"


def boxed(text: str) -> str:
    return f"  {E}[2m│{E}[0m {text}"


def step(name: str, what: str) -> str:
    return f"{E}[36mINFO    {E}[0m {E}[32mcassandra{E}[0m ➜ {E}[33m{name}{E}[0m: {E}[36m{what}{E}[0m"


# A converge that starts one node and waits for it, as the cassandra role does; the header of
# the wait task is wrapped over two lines, as Molecule wraps long lines.
CONVERGE = [
    step("converge", "Executing"),
    boxed("TASK [Gathering Facts] ****"),
    profile("12:00:00", "0:00:00.008", "0:00:00.008"),
    boxed("ok: [molecule-cassandra-1]"),
    boxed("TASK [cassandra : Install Java and the Python virtualenv tooling]"),
    boxed("  *****"),
    profile("12:00:01", "0:00:01.000", "0:00:01.008"),
    boxed("changed: [molecule-cassandra-1]"),
    boxed("TASK [cassandra : Start cassandra on molecule-cassandra-1]"),
    profile("12:00:13", "0:00:12.000", "0:00:13.008"),
    boxed("changed: [molecule-cassandra-1]"),
    boxed("TASK [cassandra : Wait for the CQL port of molecule-cassandra-1] ***"),
    profile("12:00:14", "0:00:01.000", "0:00:14.008"),
    boxed("ok: [molecule-cassandra-1]"),
    boxed("TASK [cassandra : Wait until a CQL query coordinated by the node succeeds on"),
    boxed("  molecule-cassandra-1] ***"),
    profile("12:01:04", "0:00:50.000", "0:01:04.008"),
    boxed("ok: [molecule-cassandra-1]"),
    boxed("PLAY RECAP *****"),
    boxed("molecule-cassandra-1 : ok=5 changed=2"),
    boxed("TASKS RECAP ****"),
    profile("12:01:09", "0:00:05.500", "0:01:09.508"),
    step("converge", "Executed: Successful"),
]


def stamped(lines: list[str], start: float = 1_000.0, every: float = 1.0) -> list[str]:
    return [f"{start + i * every:.3f}\t{line}" for i, line in enumerate(lines)]


def test_plain_log_steps_tasks_and_node_start():
    log = suite_timings.parse(CONVERGE, "molecule-cassandra")
    # No stamps: the step lasts as long as profile_tasks' running total says.
    assert log.steps == {"converge": pytest.approx(69.508)}
    names = [t.name for t in log.tasks]
    assert names[0] == "Gathering Facts"
    assert "Install Java and the Python virtualenv tooling" in names  # role prefix gone
    assert "Wait until a CQL query coordinated by the node succeeds on molecule-cassandra-1" in names
    durations = {t.name: t.seconds for t in log.tasks}
    assert durations["Start cassandra on molecule-cassandra-1"] == pytest.approx(1.0)
    assert durations["Install Java and the Python virtualenv tooling"] == pytest.approx(12.0)
    # The last task's duration comes from the line profile_tasks prints after the recap.
    assert durations["Wait until a CQL query coordinated by the node succeeds on molecule-cassandra-1"] == 5.5
    # Start task began 12:00:13; the CQL probe began 12:01:04 and took 5.5 s.
    [start] = log.node_starts
    assert (start.node, start.kind, start.step) == ("molecule-cassandra-1", "start", "converge")
    assert start.seconds == pytest.approx(56.5)
    assert log.passed is None


def test_stamped_log_uses_arrival_times_and_exit_line():
    lines = [
        *stamped([step("create", "Executing"), boxed("TASK [x] ***"), step("create", "Executed: Successful")], 0, 5),
        *stamped(CONVERGE, 100.0, 2.0),
        f"{200.0:.3f}\t== suite-timings: molecule-cassandra exit 0 after 200.0 s",
    ]
    log = suite_timings.parse(lines, "molecule-cassandra")
    assert log.steps["create"] == pytest.approx(10.0)
    assert log.steps["converge"] == pytest.approx((len(CONVERGE) - 1) * 2.0)
    assert log.total == 200.0
    assert log.exit_code == 0 and log.passed is True


def test_restart_and_repeated_steps_add_up():
    restart = [
        step("verify", "Executing"),
        boxed("TASK [cassandra : Wait until a CQL query coordinated by the node succeeds on molecule-cassandra-2]"),
        profile("13:00:00", "0:00:00.100", "0:00:00.100"),
        boxed("TASK [cassandra : Restart cassandra on molecule-cassandra-2] ***"),
        profile("13:00:01", "0:00:01.000", "0:00:01.100"),
        boxed("TASK [cassandra : Wait until a CQL query coordinated by the node succeeds on molecule-cassandra-2]"),
        profile("13:00:31", "0:00:30.000", "0:00:31.100"),
        boxed("TASK [Next] ***"),
        profile("13:00:33", "0:00:02.000", "0:00:33.100"),
        step("verify", "Executed: Failed"),
        step("destroy", "Executing"),
        boxed("TASK [Remove] ***"),
        profile("13:01:00", "0:00:00.100", "0:00:00.100"),
        boxed("PLAY RECAP ***"),
        profile("13:01:03", "0:00:03.000", "0:00:03.100"),
        step("destroy", "Executed: Successful"),
        step("destroy", "Executing"),
        boxed("TASK [Remove] ***"),
        profile("13:02:00", "0:00:00.100", "0:00:00.100"),
        boxed("PLAY RECAP ***"),
        profile("13:02:02", "0:00:02.000", "0:00:02.100"),
        step("destroy", "Executed: Successful"),
    ]
    log = suite_timings.parse(restart, "m")
    # The wait before the restart (a health check of a running node) is not a start.
    [start] = log.node_starts
    assert (start.kind, start.node, start.seconds) == ("restart", "molecule-cassandra-2", pytest.approx(32.0))
    assert log.steps["destroy"] == pytest.approx(5.2)
    assert log.passed is False


def test_plain_log_result_from_molecules_recap():
    recap = f"{E}[32mcassandra         {E}[0m: {E}[33mactions=9{E}[0m  successful=7  missing=2  failed="
    assert suite_timings.parse([*CONVERGE, recap + "0"]).passed is True
    assert suite_timings.parse([*CONVERGE, recap + "1"]).passed is False


def test_report_and_summary_tables(tmp_path):
    unit = [*stamped(["1 passed"], 0), "0.500\t== suite-timings: unit exit 0 after 7.0 s"]
    (tmp_path / "unit.log").write_text("\n".join(unit) + "\n")
    (tmp_path / "molecule-cassandra.log").write_text("\n".join(stamped(CONVERGE, 10.0)) + "\n")
    logs = suite_timings.load(tmp_path)
    text = suite_timings.summary(logs)
    assert "| unit | passed | 0:07 |" in text
    assert "| molecule-cassandra |" in text
    assert "Cassandra node starts and restarts: 1, 56 s" in text
    out = tmp_path / "timings.md"
    assert suite_timings.main(["report", str(tmp_path), "-o", str(out)]) == 0
    md = out.read_text()
    assert "| molecule-cassandra | converge | molecule-cassandra-1 | start | 56 |" in md
    assert md.startswith("# Test suite timings")


def test_run_echoes_and_keeps_stamped_output_with_exit_code(tmp_path, capfd):
    log = tmp_path / "logs" / "demo.log"
    rc = suite_timings.run(log, [sys.executable, "-c", "print('hello'); print('world'); raise SystemExit(3)"])
    assert rc == 3
    assert capfd.readouterr().out == "hello\nworld\n"
    lines = log.read_text().splitlines()
    assert [line.split("\t", 1)[1] for line in lines[1:3]] == ["hello", "world"]
    parsed = suite_timings.parse(lines, "demo")
    assert parsed.exit_code == 3 and parsed.passed is False
    assert len(parsed.load) == 2  # the machine's load at the start and the end


def test_run_prefixes_echoed_lines_but_not_the_log(tmp_path, capfd):
    log = tmp_path / "lane.log"
    assert suite_timings.run(log, [sys.executable, "-c", "print('a'); print('b')"], prefix="[lab] ") == 0
    assert capfd.readouterr().out == "[lab] a\n[lab] b\n"
    assert [line.split("\t", 1)[1] for line in log.read_text().splitlines()[1:3]] == ["a", "b"]


def test_runs_side_by_side_show_the_wall_clock_beside_their_sum():
    def run_log(name, start, end):
        lines = [f"{start:.3f}\t== suite-timings: start, load 1.00",
                 f"{end:.3f}\t== suite-timings: {name} exit 0 after {end - start:.1f} s, load 1.00"]
        return suite_timings.parse(lines, name)

    apart = [run_log("molecule-lab", 0, 600), run_log("molecule-tls", 0, 300), run_log("molecule-migrate", 300, 480)]
    table = "\n".join(suite_timings.scenario_table(apart))
    assert "| **all runs** | | **18:00** |" in table
    assert "| **wall clock** (runs side by side) | | **10:00** |" in table
    one_after_another = [run_log("unit", 0, 60), run_log("lint", 60, 120)]
    assert "wall clock" not in "\n".join(suite_timings.scenario_table(one_after_another))


def test_load_samples_show_in_the_table():
    lines = [
        "0.000\t== suite-timings: start, load 1.00",
        "30.000\t== suite-timings: load 5.00",
        "60.000\t== suite-timings: m exit 0 after 60.0 s, load 3.00",
    ]
    log = suite_timings.parse(lines, "m")
    assert log.load == [1.0, 5.0, 3.0]
    assert log.total == 60.0
    assert "| m | passed | 1:00 |" in "\n".join(suite_timings.scenario_table([log]))
    assert "| 3.0 (5.0) |" in "\n".join(suite_timings.scenario_table([log]))


def test_cli_summary_without_logs_fails(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "summary", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no logs" in proc.stderr


def _failed_verify() -> list[str]:
    """A verify whose first playbook fails a task it rescues, then runs pytest, which fails."""
    lines = [
        step("verify", "Executing"),
        boxed("TASK [Assert that the heap fits] ****"),
        profile("12:00:00", "0:00:00.008", "0:00:00.008"),
        boxed("fatal: [molecule-cassandra-1]: FAILED! => "),
        boxed("    msg: the heap does not fit (expected by the test)"),
        boxed("PLAY RECAP *****"),
        boxed("molecule-cassandra-1 : ok=5    changed=0    unreachable=0    failed=0    rescued=1"),
    ]
    lines += [
        boxed("TASK [Run the integration tests] ****"),
        profile("12:00:01", "0:00:01.000", "0:00:01.008"),
        boxed("fatal: [localhost]: FAILED! => "),
        boxed("    msg: non-zero return code"),
        boxed("    stdout: |-"),
        boxed("        E       AssertionError: 3 writes lost"),
        boxed("        FAILED tests/integration/lab/test_20_phase1.py::test_switch - AssertionError: 3 writes lost"),
        boxed("PLAY RECAP *****"),
        boxed("localhost : ok=1    changed=0    unreachable=0    failed=1    rescued=0"),
        step("verify", "Executed: Failed"),
    ]
    return lines


def test_a_failed_run_says_why_and_leaves_out_rescued_failures(tmp_path):
    log = suite_timings.parse(_failed_verify(), "molecule-lab")
    assert log.passed is False
    assert log.failures == [
        "E       AssertionError: 3 writes lost",
        "FAILED tests/integration/lab/test_20_phase1.py::test_switch - AssertionError: 3 writes lost",
        "task failed on localhost: Run the integration tests",
        "  msg: non-zero return code",
    ]
    (tmp_path / "molecule-lab.log").write_text("\n".join(_failed_verify()) + "\n")
    text = suite_timings.summary(suite_timings.load(tmp_path))
    # Last in the summary, where the end of CI's output shows it.
    assert text.rstrip().endswith("  msg: non-zero return code")
    assert "Why molecule-lab failed" in text
    assert "expected by the test" not in text


def test_a_passed_run_prints_no_failures(tmp_path):
    lines = [*_failed_verify()[:7], step("verify", "Executed: Successful")]
    exit_line = "0.0\t== suite-timings: molecule-cassandra exit 0 after 1.0 s"
    (tmp_path / "molecule-cassandra.log").write_text("\n".join([*stamped(lines), exit_line]) + "\n")
    text = suite_timings.summary(suite_timings.load(tmp_path))
    assert "Why" not in text
