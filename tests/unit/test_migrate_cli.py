import pytest

from zdmkit.migrate.cli import build_parser, main

BASE = [
    "--origin-contact-points",
    "127.0.0.1:1",
    "--target-contact-points",
    "127.0.0.1:1",
    "--keyspaces",
    "app",
]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["copy", "--target-contact-points", "h", "--keyspaces", "k"], "--origin-contact-points"),
        (["copy", *BASE[:4]], "--keyspaces"),
        (["copy", *BASE, "--engine", "hadoop"], "invalid choice"),
        (["copy", *BASE, "--splits", "0"], "must be >= 1"),
        (["copy", *BASE, "--rate", "-5"], "--rate must be > 0"),
        (["validate", *BASE, "--autocorrect", "missing,extra"], "--autocorrect takes"),
        (["validate", *BASE, "--engine", "dsbulk"], "invalid choice"),
        (["copy", *BASE, "--spark-conf", "novalue"], "key=value"),
    ],
)
def test_argument_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_autocorrect_kinds_parsed():
    args = build_parser().parse_args(["validate", *BASE, "--autocorrect", "missing, mismatch"])
    assert args.autocorrect == frozenset({"missing", "mismatch"})


def test_username_without_password_refused_before_connecting(capsys, monkeypatch):
    monkeypatch.delenv("ZDMKIT_ORIGIN_PASSWORD", raising=False)
    code, text = run(capsys, "copy", *BASE, "--origin-username", "cassandra")
    assert code == 2
    assert "--origin-username is set but no password: set ZDMKIT_ORIGIN_PASSWORD" in text


def test_missing_tls_files_and_bad_keyspace_map(capsys, tmp_path):
    code, text = run(capsys, "copy", *BASE, "--target-ssl-ca", str(tmp_path / "ca.pem"), "--keyspace-map", "other=x")
    assert code == 2
    assert f"--target-ssl-ca {tmp_path / 'ca.pem'}: no such file" in text
    assert "--keyspace-map names other, which is not in --keyspaces" in text


def test_unreachable_cluster_is_refused_with_the_endpoint_named(capsys, monkeypatch):
    monkeypatch.setenv("ZDMKIT_ORIGIN_PASSWORD", "s3cret-value")
    code, text = run(capsys, "copy", *BASE, "--origin-username", "cassandra")
    assert code == 2
    assert "refused before copying" in text
    assert "Origin (127.0.0.1:1): cannot connect" in text
    assert "s3cret-value" not in text


def test_passwords_from_stdin_fill_both_endpoints(monkeypatch):
    import io

    from zdmkit.migrate.cli import job_config

    monkeypatch.delenv("ZDMKIT_ORIGIN_PASSWORD", raising=False)
    monkeypatch.delenv("ZDMKIT_TARGET_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"origin": "o-secret", "target": "t-secret"}'))
    args = build_parser().parse_args(
        ["validate", *BASE, "--origin-username", "u", "--target-username", "v", "--passwords-stdin"]
    )
    config = job_config(args)
    assert (config.origin.password, config.target.password) == ("o-secret", "t-secret")


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("origin=o", "is not JSON"),
        ('{"source": "x"}', 'the keys "origin" and/or "target"'),
        ('{"origin": 5}', "must be strings"),
    ],
)
def test_bad_stdin_passwords_refused(capsys, monkeypatch, stdin, message):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code, output = run(capsys, "validate", *BASE, "--passwords-stdin")
    assert code == 2
    assert message in output
