"""Databases that are not ours: every command refuses a file tradeloop did not create, in one line, with exit 2,
leaving it byte for byte as it was; readers never create a file; a killed first creation leaves no file behind.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import duckdb
import pytest
from click.testing import CliRunner
from support import DATA, run_cli

from tradeloop import NotATradeloopDatabase, Store, ValidationError
from tradeloop.cli import cli as tradeloop_cli


def _other_app(path):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE trade_runs (id INTEGER, note VARCHAR)")
    con.execute("INSERT INTO trade_runs VALUES (1, 'my own table, not tradeloop''s')")
    con.close()


def _other_app_with_versions(path):
    """Another application that keeps its own ``schema_version`` table (a common name)."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    con.execute("INSERT INTO schema_version VALUES (3, now())")
    con.execute("CREATE TABLE invoices (id INTEGER, amount DOUBLE)")
    con.close()


def _empty_duckdb(path):
    duckdb.connect(str(path)).close()


def _text(path):
    path.write_text("my notes, not a database\n" * 20)


def _zero_bytes(path):
    path.write_bytes(b"")


#: kind -> (how to make the file, a phrase of the refusal)
FILES = {
    "another application's DuckDB file": (_other_app, "another application's DuckDB file"),
    "another application's DuckDB file with a schema_version table": (_other_app_with_versions,
                                                                      "another application's DuckDB file"),
    "an empty DuckDB file": (_empty_duckdb, "a DuckDB file with no tables"),
    "a text file": (_text, "not a DuckDB file"),
    "a file of zero bytes": (_zero_bytes, "an empty file"),
}

#: Every command that opens --db, with its other arguments.
COMMANDS = {
    "run": ["run", "--snapshot", str(DATA / "sample_snapshot.csv"), "--portfolio-value", "1000000",
            "--model-version", "m1"],
    "demo": ["demo"],
    "rerun": ["rerun", "run-0123456789abcdef"],
    "show": ["show", "run-0123456789abcdef"],
    "runs": ["runs"],
    "verify": ["verify", "--all"],
}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make(kind, tmp_path):
    path = tmp_path / "theirs.duckdb"
    FILES[kind][0](path)
    return path


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(FILES))
def test_every_command_refuses_a_file_that_is_not_ours_and_leaves_it_alone(kind, command, tmp_path):
    path = _make(kind, tmp_path)
    before, listing = _sha(path), sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(tradeloop_cli, [*COMMANDS[command], "--db", str(path)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {str(path)!r} is not a tradeloop database"), result.stderr
    assert FILES[kind][1] in result.stderr and result.stderr.count("\n") == 1
    assert _sha(path) == before  # no migration committed into it
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no WAL, no temporary file left


@pytest.mark.parametrize("kind", list(FILES))
def test_the_library_raises_not_a_tradeloop_database(kind, tmp_path):
    path = _make(kind, tmp_path)
    before = _sha(path)
    with pytest.raises(NotATradeloopDatabase, match="is not a tradeloop database"):
        Store(path)
    with pytest.raises(NotATradeloopDatabase):
        Store(path, read_only=True).runs()
    assert _sha(path) == before
    assert issubclass(NotATradeloopDatabase, ValidationError)


def test_the_real_program_refuses_another_applications_database(tmp_path):
    path = _make("another application's DuckDB file", tmp_path)
    before = _sha(path)
    for command in ("run", "runs"):
        proc = run_cli(*COMMANDS[command], "--db", path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is not a tradeloop database" in proc.stderr
    assert _sha(path) == before
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT * FROM trade_runs").fetchall() == [(1, "my own table, not tradeloop's")]
    con.close()


@pytest.mark.parametrize("command", ["rerun", "show", "runs", "verify"])
def test_readers_on_a_mistyped_path_create_no_file(command, tmp_path):
    path = tmp_path / "mistyped.duckdb"
    result = CliRunner().invoke(tradeloop_cli, [*COMMANDS[command], "--db", str(path)], catch_exceptions=False)
    assert result.exit_code == 2 and "does not exist" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_tradeloop_database_of_an_older_schema_is_still_ours(tmp_path):
    """The check must not refuse our own older files (they are migrated, see test_migration.py)."""
    import shutil

    old = tmp_path / "old.duckdb"
    shutil.copy(DATA.parent / "tests" / "data" / "schema_v1.duckdb", old)
    with Store(old) as store:
        assert store.runs()["run_id"].tolist() == ["run-v1-fixture"]


def test_a_kill_inside_the_first_migration_leaves_no_database_file(tmp_path):
    """A new file is built beside its path and linked into place whole: killed half way, there is no file at the
    path, so readers say it does not exist and the next writer creates it normally."""
    path = tmp_path / "new.duckdb"
    script = textwrap.dedent(f"""
        import os, signal
        import tradeloop.store.schema as schema
        from tradeloop import Store

        def half(con, where):
            con.execute(schema.MIGRATIONS[0][1])  # some tables written, the transaction still open
            os.kill(os.getpid(), signal.SIGKILL)

        schema.migrate = half
        Store({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not path.exists()
    runs = run_cli("runs", "--db", path)
    assert runs.returncode == 2 and "does not exist" in runs.stderr and not path.exists()
    demo = run_cli("demo", "--db", path)
    assert demo.returncode == 0, demo.stderr
    assert run_cli("verify", "--db", path).returncode == 0
