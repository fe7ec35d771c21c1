"""End to end: the real ``tradeloop`` program in a subprocess against a real DuckDB file."""

import json

import click
import pytest
from support import DATA

from tradeloop import Store
from tradeloop.cli import cli as cli_group

RUN = ["run", "--snapshot", DATA / "sample_snapshot.csv", "--portfolio-value", "1000000", "--model-version", "m1",
       "--fallback-prices", DATA / "fallback_prices.csv"]


def test_demo(cli, db_path):
    p = cli("demo", "--db", db_path)
    assert p.returncode == 0, p.stderr
    assert "status    done" in p.stdout and "FILLED 48" in p.stdout and str(db_path) in p.stdout
    with Store(db_path) as s:
        assert s.table_counts()["trade_fills"] == 48


def test_run_json_then_show_rerun_and_runs(cli, db_path):
    p = cli(*RUN, "--params", DATA / "params_pass.json", "--db", db_path, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"run_id", "snapshot_id", "status", "orders", "fills", "error"} <= set(out)
    assert out["status"] == "done" and out["orders"] == {"FILLED": 47} and out["fills"] == 47

    again = cli("rerun", out["run_id"], "--db", db_path, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["orders"] == {"FILLED": 47}

    shown = json.loads(cli("show", out["run_id"], "--db", db_path, "--json").stdout)
    assert len(shown["order_rows"]) == 47 and len(shown["fill_rows"]) == 47
    assert [e["payload"]["attempt"] for e in shown["audit_events"]] == [1, 2]
    text = cli("show", out["run_id"], "--db", db_path)
    assert text.returncode == 0 and "audit events (2)" in text.stdout and "risk      passed" in text.stdout

    listing = cli("runs", "--db", db_path)
    assert out["run_id"] in listing.stdout and "done" in listing.stdout


def test_risk_blocked_run_exits_3_with_reasons(cli, db_path):
    p = cli(*RUN, "--params", DATA / "params_block.json", "--db", db_path)
    assert p.returncode == 3, p.stderr
    assert p.stdout.count("exceeds max_order_notional") == 4
    with Store(db_path) as s:
        run = s.runs().iloc[0]
        assert run["status"] == "blocked"
        outcome = json.loads(s.get_run(run["run_id"])["params"])["risk"]["outcome"]
        assert outcome["orders_blocked"] == 4 and s.table_counts()["trade_fills"] == 0


@pytest.mark.parametrize("cap, code", [(0.3, 0), (0.2999, 3)])
def test_sector_at_the_cap_passes_and_beyond_it_blocks(cli, db_path, tmp_path, cap, code):
    # 10 % + 20 % is 0.30000000000000004 in binary: at the cap (within 1e-9), so the rule "exceeds" does not fire
    snap = tmp_path / "snap.csv"
    snap.write_text("symbol,weight,price,sector\nA,0.1,1,Tech\nB,0.2,1,Tech\n")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"risk": {"sector_cap": cap}}))
    p = cli("run", "--snapshot", snap, "--portfolio-value", "100", "--model-version", "m1", "--params", params,
            "--db", db_path)
    assert p.returncode == code, p.stdout + p.stderr
    assert ("exceeds sector_cap" in p.stdout) == (code == 3)


def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(cli, db_path, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,weight,price\nAAPL,0.5,190\nMSFT,0.3,-4\n")
    p = cli("run", "--snapshot", bad, "--portfolio-value", "1e6", "--model-version", "m1", "--db", db_path)
    assert p.returncode == 2
    assert p.stderr.strip() == f"error: {bad}: snapshot: price for 'MSFT' is -4.0; price must be > 0"
    assert "Traceback" not in p.stderr
    assert not db_path.exists()
    with Store(db_path) as s:  # also when the database exists already: counts stay as they were
        before = s.table_counts()
    p = cli(*RUN, "--params", DATA / "params_pass.json", "--positions", bad, "--db", db_path)
    assert p.returncode == 2 and "positions is missing column(s) ['qty']" in p.stderr
    with Store(db_path) as s:
        assert s.table_counts() == before


def test_usage_errors_exit_2(cli, db_path):
    assert cli("run", "--db", db_path).returncode == 2  # missing required options
    p = cli("rerun", "run-doesnotexist", "--db", db_path)
    assert p.returncode == 2 and "run 'run-doesnotexist' is not in" in p.stderr


def test_lean_provider_exits_1_with_clear_error(cli, db_path):
    p = cli(*RUN, "--provider", "lean", "--db", db_path, "--json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["status"] == "failed"
    assert out["error"] == "reserved: live Lean/IB execution is not available in this phase"


def test_db_from_environment(cli, tmp_path):
    db = tmp_path / "env.duckdb"
    assert cli("demo", env={"TRADELOOP_DB": str(db)}).returncode == 0
    assert db.exists()


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


@pytest.mark.parametrize("path, command", list(_commands(cli_group)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_commands_have_help_with_an_example(path, command):
    assert command.help and "Example:" in command.help, f"tradeloop {' '.join(path)} needs help text with an example"


def test_a_run_id_reused_with_different_inputs_exits_2_and_writes_nothing(cli, db_path, tmp_path):
    base = [*RUN, "--params", DATA / "params_pass.json", "--run-id", "R", "--db", db_path]
    assert cli(*base).returncode == 0
    with Store(db_path) as s:
        before = s.table_counts()
    stricter = tmp_path / "stricter.json"
    stricter.write_text(json.dumps({**json.loads((DATA / "params_pass.json").read_text()),
                                    "risk": {"max_order_notional": 50000}}))
    changed = {
        "params": [*RUN, "--params", stricter, "--run-id", "R", "--db", db_path],
        "positions": [*base, "--positions", DATA / "positions.csv"],
    }
    for what, args in changed.items():
        p = cli(*args)
        assert p.returncode == 2, (what, p.stdout, p.stderr)
        assert p.stderr.startswith(f"error: run 'R' exists with different {what}: ") and p.stderr.count("\n") == 1
        assert p.stdout == ""
    assert "risk.max_order_notional stored 100000, given 50000" in cli(*changed["params"]).stderr
    with Store(db_path) as s:
        assert s.table_counts() == before
    again = cli(*base, "--json")  # the same inputs: the stored run is re-checked, as before
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "done"


@pytest.mark.parametrize("variable, value, phrase", [
    ("TRADELOOP_LEASE_SECONDS", "0", "TRADELOOP_LEASE_SECONDS is '0'; it must be a number of seconds > 0"),
    ("TRADELOOP_LEASE_SECONDS", "soon", "TRADELOOP_LEASE_SECONDS is 'soon'"),
    ("TRADELOOP_FILL_BATCH", "-3", "TRADELOOP_FILL_BATCH is '-3'; it must be a whole number >= 1"),
    ("TRADELOOP_LOCK_TIMEOUT", "inf", "TRADELOOP_LOCK_TIMEOUT is 'inf'; it must be a number of seconds >= 0"),
    ("TRADELOOP_CRASH_AT", "everywhere", "TRADELOOP_CRASH_AT is 'everywhere'; allowed: ['after_freeze'"),
])
def test_bad_settings_exit_2_before_the_database_is_created(cli, db_path, variable, value, phrase):
    p = cli(*RUN, "--db", db_path, env={variable: value})
    assert p.returncode == 2 and p.stderr.startswith(f"error: {phrase}") and p.stderr.count("\n") == 1, p.stderr
    assert not db_path.exists()
