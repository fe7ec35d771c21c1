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
    assert p.returncode == 2 and "does not exist" in p.stderr and not db_path.exists()  # rerun creates no file
    Store(db_path).close()
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


# --- show / runs / simulations / verify-artifact --json / re-run notes, at realistic size --------------------------
@pytest.fixture(scope="module")
def big_db(tmp_path_factory):
    """A 3,050-order run (done) and the same book blocked, in one database; returns (db, done_id, blocked_id)."""
    import tradeloop as tl
    from books import write_book, write_params

    folder = tmp_path_factory.mktemp("bigcli")
    inputs = write_book(folder)
    db = folder / "big.duckdb"
    common = dict(portfolio_value=50_000_000.0, model_version="big-v1", **inputs)
    done = tl.run_from_files(db, params_file=write_params(folder, "pass"), **common)
    blocked = tl.run_from_files(db, params_file=write_params(folder, "block", max_order_notional=40_000), **common)
    return db, done, blocked


def test_show_summary_is_bounded_and_names_the_largest_orders(cli, big_db):
    db, done, _ = big_db
    p = cli("show", done.run_id, "--db", db)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) < 60, len(lines)
    assert f"orders: 10 largest of {len(done.orders)} by notional (all: --orders, --limit N, --json)" in lines
    notional = (done.orders["qty"] * done.orders["price"]).sort_values(ascending=False)
    top = done.orders.loc[notional.index[0]]
    header = lines.index(f"orders: 10 largest of {len(done.orders)} by notional (all: --orders, --limit N, --json)")
    assert lines[header + 2].split()[0] == top["client_order_id"]
    assert "risk      passed: 3050 checked, 0 blocked" in p.stdout
    assert "model     big-v1  attempts 1" in p.stdout
    assert f"order lifecycles ({len(done.orders)};" in p.stdout and "more; all 3050 by path:" in p.stdout


def test_show_limit_orders_and_newest(cli, big_db):
    db, done, blocked = big_db
    five = cli("show", done.run_id, "--limit", "5", "--db", db).stdout
    assert f"orders: 5 largest of {len(done.orders)}" in five
    every = cli("show", done.run_id, "--orders", "--db", db)
    assert every.returncode == 0 and f"\norders ({len(done.orders)})\n" in every.stdout
    assert f"\nfills ({len(done.fills)})\n" in every.stdout
    assert all(coid in every.stdout for coid in done.orders["client_order_id"])
    newest = cli("show", "--db", db)  # no RUN_ID: the newest run
    assert newest.returncode == 0 and newest.stdout.startswith(f"run       {blocked.run_id}")
    assert f"blocked   … and {len(blocked.risk) - 10} more: tradeloop show {blocked.run_id} --orders" in newest.stdout
    bad = cli("show", done.run_id, "--limit", "0", "--db", db)
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_show_order_accepts_a_symbol(cli, big_db):
    db, done, _ = big_db
    row = done.orders.iloc[17]
    by_symbol = cli("show", done.run_id, "--order", row["symbol"], "--db", db)
    assert by_symbol.returncode == 0, by_symbol.stderr
    assert by_symbol.stdout.splitlines()[0] == f"order     {row['client_order_id']}  (run {done.run_id})"
    by_id = cli("show", done.run_id, "--order", row["client_order_id"], "--db", db)
    assert by_id.stdout == by_symbol.stdout
    missing = cli("show", done.run_id, "--order", "NOSUCH", "--db", db)
    assert missing.returncode == 2 and "neither a client_order_id nor a symbol" in missing.stderr


def test_runs_lists_newest_first_without_nan(cli, big_db):
    db, done, blocked = big_db
    p = cli("runs", "--db", db)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["created_at", "run_id", "model_version", "snapshot_id", "orders", "status",
                                "attempts", "error"]
    assert lines[1].split()[2] == blocked.run_id and lines[2].split()[2] == done.run_id  # newest first
    assert "NaN" not in p.stdout and "None" not in p.stdout
    assert lines[2].split()[3:7] == ["big-v1", done.result.snapshot_id, str(len(done.orders)), "done"]
    one = cli("runs", "--limit", "1", "--db", db)
    assert len(one.stdout.splitlines()) == 2 and blocked.run_id in one.stdout
    as_json = json.loads(cli("runs", "--limit", "1", "--json", "--db", db).stdout)
    assert [r["run_id"] for r in as_json] == [blocked.run_id] and as_json[0]["model_version"] == "big-v1"


def test_simulations_listed_and_shown(cli, tmp_path):
    import tradeloop as tl
    from tradeloop.store.simulations import save_simulation

    db = tmp_path / "sims.duckdb"
    weights, prices = tl.synthetic_history(4, 30, seed=5)
    sim = tl.simulate(weights, prices, portfolio_value=1_000_000.0, model_version="sim-v9", progress=False)
    with tl.Store(db) as store:
        save_simulation(store, sim)
    listed = cli("simulations", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert sim.simulation_id in listed.stdout and "sim-v9" in listed.stdout
    listed_json = json.loads(cli("simulations", "--json", "--db", db).stdout)
    assert [s["simulation_id"] for s in listed_json] == [sim.simulation_id]
    shown = cli("show", sim.simulation_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    d = sim.describe()
    assert shown.stdout.startswith(f"simulation {sim.simulation_id}  (model sim-v9")
    assert f"orders     {d['orders']}: filled {d['filled']}, blocked {d['blocked']}" in shown.stdout
    as_json = json.loads(cli("show", sim.simulation_id, "--json", "--db", db).stdout)
    assert as_json["orders"] == d["orders"] and as_json["fills"] == d["fills"]
    assert as_json["commission"] == pytest.approx(d["commission"], abs=0.011)
    empty = cli("simulations", "--db", tmp_path / "none.duckdb")
    assert empty.returncode == 2


def test_repeated_run_says_it_rechecked(cli, db_path):
    first = cli(*RUN, "--params", DATA / "params_pass.json", "--db", db_path)
    assert first.returncode == 0 and "note" not in first.stdout
    again = cli(*RUN, "--params", DATA / "params_pass.json", "--db", db_path)
    assert again.returncode == 0
    assert ("note      re-checked an existing run (attempt 2): it was already done; nothing was executed again"
            in again.stdout)
    as_json = json.loads(cli(*RUN, "--params", DATA / "params_pass.json", "--db", db_path, "--json").stdout)
    assert as_json["existing"] is True and as_json["attempt"] == 3 and as_json["previous_status"] == "done"
    rerun = cli("rerun", as_json["run_id"], "--db", db_path)
    assert "re-checked an existing run (attempt 4)" in rerun.stdout


def test_report_without_output_or_with_unknown_run_is_bad_input(cli, big_db, tmp_path):
    db, done, _ = big_db
    none = cli("report", done.run_id, "--db", db)
    assert none.returncode == 2 and none.stderr == "error: give --html FILE and/or --ipynb FILE\n"
    unknown = cli("report", "run-nope", "--db", db, "--html", tmp_path / "x.html")
    assert unknown.returncode == 2 and "run-nope" in unknown.stderr and not (tmp_path / "x.html").exists()


def test_verify_artifact_json(cli, tmp_path):
    out, db = tmp_path / "art", tmp_path / "b.duckdb"
    ran = cli("batch", "--snapshots", DATA / "sample_snapshot.csv", "--params", DATA / "params_pass.json",
              "--portfolio-value", "1000000", "--model-version", "va-v1", "--out", out, "--db", db, "--json",
              timeout=600)
    assert ran.returncode == 0, ran.stderr
    artifact = json.loads(ran.stdout)["runs"][0]["notebook_path"]
    good = cli("verify-artifact", artifact, "--db", db, "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"path": artifact, "ok": True, "rerun": False, "problems": []}
    with open(artifact, "a", encoding="utf-8") as f:
        f.write("\n")
    bad = cli("verify-artifact", artifact, "--db", db, "--json")
    body = json.loads(bad.stdout)
    assert bad.returncode == 1 and body["ok"] is False and any("sha256" in p for p in body["problems"])
