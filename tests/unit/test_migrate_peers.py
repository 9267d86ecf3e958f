"""The cdm and dsbulk-migrator engines' pure parts: CDM's properties and log, DSBulk Migrator's
command line, prompts and log, and the Spark master checks (the programs themselves run in the
migrate scenario)."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from zdmkit.migrate import cdm, dsbulk_migrator, sparkmaster
from zdmkit.migrate.connection import Endpoint
from zdmkit.migrate.schema import ColumnSpec, TableSpec
from zdmkit.migrate.tasks import JobConfig
from zdmkit.migrate.validate import ValidateOptions

WIDE = TableSpec(
    "shop",
    "orders",
    (ColumnSpec("customer", "text", "partition"),),
    (ColumnSpec("placed", "timestamp", "clustering"),),
    (),
    (ColumnSpec("total", "decimal", "regular"),),
)
NARROW = TableSpec(
    "shop", "users", (ColumnSpec("id", "uuid", "partition"),), (), (), (ColumnSpec("n", "text", "regular"),)
)


def config(**over) -> JobConfig:
    base = {
        "origin": Endpoint("Origin", ("10.0.0.1", "10.0.0.2:9142"), username="u", password="o=secret:1"),
        "target": Endpoint("Target", ("10.0.1.1",), username="v", password="t-secret", consistency="quorum"),
        "keyspaces": ("shop",),
        "splits": 64,
    }
    base.update(over)
    return JobConfig(**base)


def test_cdm_properties_follow_its_recommendations():
    props = cdm.table_properties(config(), NARROW, "copy")
    assert props["spark.cdm.connect.origin.host"] == "10.0.0.1:9042,10.0.0.2:9142"
    assert props["spark.cdm.perfops.numParts"] == "64"
    assert props["spark.cdm.perfops.batchSize"] == "1"  # primary key = partition key
    assert cdm.table_properties(config(), WIDE, "copy")["spark.cdm.perfops.batchSize"] == "5"
    assert props["spark.cdm.perfops.ratelimit.origin"] == "20000"  # no --rate: CDM's default
    assert props["spark.cdm.perfops.consistency.write"] == "QUORUM"
    assert props["spark.cdm.connect.target.password"] == "t-secret"
    assert "spark.cdm.autocorrect.missing" not in props
    limited = cdm.table_properties(config(rate=9000.0), NARROW, "copy", workers=3)
    assert limited["spark.cdm.perfops.ratelimit.target"] == "3000"  # CDM's rate applies per worker
    checked = cdm.table_properties(config(validate=ValidateOptions(autocorrect=frozenset({"missing"}))), NARROW,
                                   "validate")  # fmt: skip
    assert (checked["spark.cdm.autocorrect.missing"], checked["spark.cdm.autocorrect.mismatch"]) == ("true", "false")
    renamed = TableSpec(**{**NARROW.__dict__, "target_keyspace": "shop2"})
    assert cdm.table_properties(config(), renamed, "copy")["spark.cdm.schema.target.keyspaceTable"] == "shop2.users"


def test_cdm_properties_file_is_private_and_reads_back(tmp_path):
    path = tmp_path / "cdm.properties"
    cdm.write_properties(path, {"spark.cdm.connect.origin.password": "o=secret:1 #x", "k": " lead"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "spark.cdm.connect.origin.password=o\\=secret\\:1 #x\n" in text
    assert "k=\\ lead\n" in text


CDM_LOG = """\
26/12/01 13:06:41 INFO BasePartitionJob: PARAM Calculated -- Total Partitions: 16
26/12/01 13:06:57 ERROR DiffJobSession: Missing target row found for key: [7 %% 2024-01-01T00:00:00Z]
26/12/01 13:06:57 ERROR DiffJobSession: Inserted missing row in target: [7 %% 2024-01-01T00:00:00Z]
26/12/01 13:06:57 ERROR DiffJobSession: Mismatch row found for key: [8 %% 2024-01-02T00:00:00Z] Mismatch: \
Target column:total-origin[1.5]-target[2.5]; Target column:note origin is null, target is x;
26/12/01 13:06:57 INFO JobCounter: Final Read Record Count: 200
26/12/01 13:06:57 INFO JobCounter: Final Mismatch Record Count: 1
26/12/01 13:06:57 INFO JobCounter: Final Corrected Mismatch Record Count: 0
26/12/01 13:06:57 INFO JobCounter: Final Missing Record Count: 1
26/12/01 13:06:57 INFO JobCounter: Final Valid Record Count: 198
26/12/01 13:06:57 INFO JobCounter: Final Partitions Passed: 16
26/12/01 13:06:57 INFO JobCounter: Final Partitions Failed: 0
"""


def test_cdm_log_gives_counters_ranges_and_keys():
    parsed = cdm.parse_output(CDM_LOG.splitlines(), ["customer", "placed"])
    assert parsed["counters"] == {"read": 200, "mismatch": 1, "corrected_mismatch": 0, "missing": 1, "valid": 198,
                                  "partitions_passed": 16, "partitions_failed": 0}  # fmt: skip
    assert parsed["total_parts"] == 16
    assert parsed["samples"]["missing"] == [{"key": {"customer": "7", "placed": "2024-01-01T00:00:00Z"}}]
    assert parsed["samples"]["mismatch"][0]["columns"] == ["note", "total"]
    assert parsed["error"] is None


def test_cdm_failure_is_named_in_one_line():
    lines = [
        "26/12/01 WARN ControlConnection: [s0] Authentication error on node /10.0.0.1:9042",
        'Exception in thread "main" java.io.IOException: Failed to open native connection to Cassandra at '
        "{10.0.0.1:9042} :: com.datastax.oss.driver.api.core.auth.AuthenticationException: Authentication error "
        "on node /10.0.0.1:9042: server replied with 'Provided username u and/or password are incorrect'",
    ]
    assert cdm._reason(lines, 1) == (
        "Authentication error on node /10.0.0.1:9042: server replied with 'Provided username u and/or password are "
        "incorrect'"
    )
    assert cdm._reason(["nothing useful"], 3) == "spark-submit exited 3"


def test_cdm_input_problems():
    opts = cdm.CdmOptions(jar="/nonexistent.jar", spark_submit=sys.executable, properties=(("spark.cores.max", "2"),))
    problems = cdm.check_input(config(), opts)
    assert "--cdm-jar /nonexistent.jar: no such file (run `make artifacts`)" in problems
    assert any(p.startswith("--cdm-property spark.cores.max: only spark.cdm.*") for p in problems)
    assert cdm.check_input(config(), None)[0].startswith("--engine cdm needs --cdm-jar")


def test_migrator_command_keeps_passwords_off_the_command_line(tmp_path):
    opts = dsbulk_migrator.MigratorOptions(jar="m.jar", workdir=str(tmp_path))
    argv = dsbulk_migrator.command(config(rate=500.0), [NARROW, WIDE], opts)
    text = " ".join(argv)
    assert "o=secret:1" not in text and "t-secret" not in text
    assert "--export-password" in argv and "--import-password" in argv
    assert "--keyspaces=^(shop)$" in argv and "--tables=^(orders|users)$" in argv
    assert "--export-host=10.0.0.2:9142" in argv and "--import-consistency=QUORUM" in argv
    assert "--import-dsbulk-option=--executor.maxPerSecond=500" in argv


def test_migrator_passwords_are_typed_at_each_prompt(tmp_path):
    # a child that, like the migrator, reads each answer with a fresh buffered reader after its prompt
    child = (
        "import io, os, sys\n"
        "for side in ('origin', 'target'):\n"
        "    sys.stdout.write(f'Enter the password to use to authenticate against the {side} cluster: ')\n"
        "    sys.stdout.flush()\n"
        "    line = io.open(os.dup(0), 'rb', buffering=65536).readline().decode().strip()\n"
        "    print(f'{side}={line}')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = (tmp_path / "out.log").open("w")
    dsbulk_migrator._answer_prompts(proc, {"origin": "o-pw", "target": "t-pw"}, out)
    proc.wait(timeout=30)
    out.close()
    text = (tmp_path / "out.log").read_text()
    assert "origin=o-pw" in text and "target=t-pw" in text


def test_migrator_log_names_the_cause():
    lines = [
        "13:08:16.682 WARN  [target] Authentication error (AuthenticationException: Authentication error on node "
        "10.0.1.1:9042: server replied with 'Provided username v and/or password are incorrect' to AuthResponse "
        "request)",
        "13:08:18.722 ERROR Could not contact target cluster",
        "13:08:18.724 INFO  Migration finished with 0 successfully migrated tables, 0 failed tables.",
    ]
    assert dsbulk_migrator.reason(lines).startswith("authentication failed on Target: Authentication error on node")
    assert dsbulk_migrator.reason(lines[1:]) == "Could not contact target cluster"


def test_migrator_records_come_from_the_newest_operation(tmp_path):
    for stamp, total in (("20261201_100000_000", 5), ("20261201_110000_000", 200)):
        op = tmp_path / f"IMPORT_shop_users_{stamp}"
        op.mkdir()
        (op / "operation.log").write_text(f"INFO  Records: total: {total:,}, successful: {total}, failed: 0\n")
    assert dsbulk_migrator.operation_records(tmp_path, "IMPORT", NARROW) == (200, 0)
    assert dsbulk_migrator.operation_records(tmp_path, "EXPORT", NARROW) is None


@pytest.mark.parametrize("master", ["local", "local[*]", "local[4]", "local[2,3]"])
def test_local_masters(master):
    assert sparkmaster.is_local(master)
    assert sparkmaster.check(master) == ([], {})


def test_master_urls():
    assert sparkmaster.parse("spark://10.0.0.5:7078") == sparkmaster.Master("spark://10.0.0.5:7078", "10.0.0.5", 7078)
    assert sparkmaster.parse("spark://spark-1").port == 7077
    with pytest.raises(ValueError, match="neither local"):
        sparkmaster.parse("yarn")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_master_is_named():
    problems, _ = sparkmaster.check(f"spark://127.0.0.1:{_closed_port()}", timeout=2)
    assert len(problems) == 1 and "cannot be reached" in problems[0] and "127.0.0.1" in problems[0]


def test_master_without_alive_workers_is_refused():
    body = json.dumps({"status": "ALIVE", "workers": [{"host": "10.0.0.9", "state": "DEAD"}]}).encode()

    class Status(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        problems, found = sparkmaster.check(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        assert problems == [f"Spark master spark://127.0.0.1:{port} has no alive worker: a job would wait forever for "
                            "executors"]  # fmt: skip
        assert found["workers"][0]["state"] == "DEAD"
    finally:
        server.shutdown()


def test_the_driver_address_is_on_the_route_to_the_master():
    assert sparkmaster.driver_address(sparkmaster.parse("spark://127.0.0.1:7077")) == "127.0.0.1"


def test_engine_names_in_the_cli():
    from zdmkit.migrate.cli import build_parser

    args = build_parser().parse_args(["validate", "--origin-contact-points", "h", "--target-contact-points", "h",
                                      "--keyspaces", "k", "--engine", "cdm", "--cdm-property",
                                      "spark.cdm.perfops.fetchSizeInRows=500"])  # fmt: skip
    assert args.cdm_property == [("spark.cdm.perfops.fetchSizeInRows", "500")]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "--origin-contact-points", "h", "--target-contact-points", "h",
                                   "--keyspaces", "k", "--engine", "dsbulk-migrator"])  # fmt: skip
    assert Path(dsbulk_migrator.__file__).is_file()


def test_cdm_jobs_lift_the_driver_request_limit(tmp_path):
    runner = cdm.CdmRunner(config(spark_conf=(("spark.driver.extraJavaOptions", "-Dx=1"),)),
                           cdm.CdmOptions(jar="c.jar", spark_submit="spark-submit"), tmp_path)  # fmt: skip
    cmd = runner.command("copy", tmp_path / "p", tmp_path)
    assert f"spark.driver.extraJavaOptions=-Dx=1 {cdm.DRIVER_OPTIONS}" in cmd
    assert f"spark.executor.extraJavaOptions={cdm.DRIVER_OPTIONS}" in cmd
    assert cmd[-3:] == ["--class", "com.datastax.cdm.job.Migrate", "c.jar"]
