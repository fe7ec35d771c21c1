"""Bad input, table-driven: every kind gives a one-line error naming the bad value, a documented exit code, and
writes nothing (table counts before == after, on a database that already holds a run).

CLI cases go through the real click command in-process (``CliRunner``: the same code path as the program, ~50x
faster than a subprocess each); a sample of them is repeated as real subprocesses to prove the two agree.
"Notebook parameters": the notebooks (issue 3) call the Python API, so those cases call the same functions with the
values a notebook's parameters cell would pass.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

import pandas as pd
import pytest
from click.testing import CliRunner
from support import DATA, run_cli

from tradeloop import (
    RunNotFound,
    RunParams,
    Store,
    ValidationError,
    create_run,
    execute_run,
    freeze_snapshot,
    load_params,
    load_snapshot_file,
    simulate,
)
from tradeloop.cli import cli as tradeloop_cli
from tradeloop.core.validate import MAX_TABLE_BYTES

GOOD_SNAPSHOT = "symbol,weight,price,sector\nAAA,0.3,10,Tech\nBBB,0.2,20,Energy\n"


@dataclass(frozen=True)
class Sparse:
    """A file of ``size`` bytes that takes no disk space (for the size limit)."""

    size: int


@dataclass(frozen=True)
class Case:
    kind: str
    phrase: str  # must appear in the error: it names the bad value
    files: dict = field(default_factory=dict)  # snap.csv (default GOOD_SNAPSHOT), pos.csv, fb.csv, params.json
    args: tuple = ()  # appended to the default `run` arguments (a repeated option overrides the default)
    command: tuple | None = None  # instead of `run …`
    env: dict = field(default_factory=dict)
    exit: int = 2


def _csv(header, *rows):
    return "\n".join([header, *rows]) + "\n"


CASES = [
    # --- snapshot
    Case("snapshot price NaN", "price for 'AAA' is 'NaN'", {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,NaN")}),
    Case("snapshot price inf", "price for 'AAA' is inf", {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,inf")}),
    Case("snapshot price negative", "price for 'AAA' is -5.0", {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,-5")}),
    Case("snapshot price zero", "price for 'AAA' is 0.0", {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,0")}),
    Case("snapshot weight NaN", "weight for 'BBB' is 'nan'",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,10", "BBB,nan,20")}),
    Case("snapshot weight not a number", "weight for 'AAA' is '30%'",
         {"snap.csv": _csv("symbol,weight,price", "AAA,30%,10")}),
    Case("weights beyond the allowed leverage", "sum to 1.5 in absolute value, beyond params.max_leverage 1",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.9,10", "BBB,-0.6,20")}),
    Case("snapshot duplicate symbols", "duplicate symbol(s) ['AAA']",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.1,10", "AAA,0.2,10")}),
    Case("snapshot header only", "snapshot is empty", {"snap.csv": "symbol,weight,price\n"}),
    Case("snapshot file of zero bytes", "is empty; it needs a header row", {"snap.csv": ""}),
    Case("snapshot missing column", "missing column(s) ['weight']", {"snap.csv": _csv("symbol,price", "AAA,10")}),
    Case("snapshot misspelled column", "unknown column(s) ['wieght']",
         {"snap.csv": _csv("symbol,weight,wieght,price", "AAA,0.1,0.1,10")}),
    Case("snapshot ragged rows", "could not be parsed", {"snap.csv": _csv("symbol,weight,price", "AAA,0.1,10,9,9")}),
    Case("snapshot not UTF-8", "is not UTF-8 text", {"snap.csv": "symbol,weight,price\nCAF\xc9,0.1,10\n".encode("latin-1")}),
    Case("snapshot file too large", f"the limit is {MAX_TABLE_BYTES:,} bytes", {"snap.csv": Sparse(MAX_TABLE_BYTES + 1)}),
    Case("snapshot file missing", "does not exist", {}, ("--snapshot", "nope.csv")),
    Case("snapshot file of an unknown type", "has suffix '.xlsx'", {"snap.xlsx": "x"}, ("--snapshot", "snap.xlsx")),
    Case("symbol with a quote", "symbol \"O'NEIL\" in row 1 is not allowed",
         {"snap.csv": _csv("symbol,weight,price", "O'NEIL,0.1,10")}),
    Case("symbol with a semicolon and SQL", "symbol 'A;DROP TABLE trade_runs' in row 2",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.1,10", "A;DROP TABLE trade_runs,0.1,10")}),
    Case("symbol with a newline", "symbol 'AB\\nC' in row 1", {"snap.csv": _csv("symbol,weight,price", '"AB\nC",0.1,10')}),
    Case("symbol that is an SQL fragment", "symbol \"x' OR '1'='1\"",
         {"snap.csv": _csv("symbol,weight,price", "x' OR '1'='1,0.1,10")}),
    Case("symbol overlong", "symbol '" + "L" * 40 + "'", {"snap.csv": _csv("symbol,weight,price", "L" * 40 + ",0.1,10")}),
    Case("unknown sector with a sector cap", "sector is unknown for ['BBB']",
         {"snap.csv": _csv("symbol,weight,price,sector", "AAA,0.1,10,Tech", "BBB,0.1,10,"),
          "params.json": json.dumps({"risk": {"sector_cap": 0.5}})}),
    Case("negative lot size", "lot_size for 'AAA' is -10.0",
         {"snap.csv": _csv("symbol,weight,price,lot_size", "AAA,0.1,10,-10")}),
    Case("fractional lot size", "lot_size for 'AAA' is 2.5", {"snap.csv": _csv("symbol,weight,price,lot_size", "AAA,0.1,10,2.5")}),
    Case("negative volume", "volume for 'AAA' is -1.0", {"snap.csv": _csv("symbol,weight,price,volume", "AAA,0.1,10,-1")}),
    # --- positions
    Case("positions fractional qty", "qty for 'AAA' is 1.5", {"pos.csv": _csv("symbol,qty", "AAA,1.5")}),
    Case("positions qty not a number", "qty for 'AAA' is 'ten'", {"pos.csv": _csv("symbol,qty", "AAA,ten")}),
    Case("positions duplicate symbol", "positions: duplicate symbol(s) ['AAA']", {"pos.csv": _csv("symbol,qty", "AAA,1", "AAA,2")}),
    Case("positions misspelled column", "positions is missing column(s) ['qty']", {"pos.csv": _csv("symbol,quantity", "AAA,1")}),
    Case("positions symbol with a quote", "symbol 'A\"B'", {"pos.csv": _csv("symbol,qty", '"A""B",1')}),
    # --- fallback prices
    Case("fallback price negative", "price for 'AAA' is -1.0", {"fb.csv": _csv("symbol,price", "AAA,-1")}),
    Case("fallback price zero", "price for 'AAA' is 0.0", {"fb.csv": _csv("symbol,price", "AAA,0")}),
    Case("fallback price empty", "price for 'AAA' is missing", {"fb.csv": _csv("symbol,price", "AAA,")}),
    Case("fallback symbol with a space", "symbol 'BAD SYM'", {"fb.csv": _csv("symbol,price", "BAD SYM,3")}),
    # --- params JSON
    Case("params not JSON", "is not valid JSON", {"params.json": "{cash_buffer: 0.1"}),
    Case("params not UTF-8", "is not UTF-8 text", {"params.json": b'{"cash_buffer": "\xff"}'}),
    Case("params not an object", "params must be a JSON object, got list", {"params.json": "[1, 2]"}),
    Case("params unknown key", "unknown key(s) ['cash_bufer']", {"params.json": '{"cash_bufer": 0.1}'}),
    Case("params cash buffer beyond 1", "params.cash_buffer is 1.5", {"params.json": '{"cash_buffer": 1.5}'}),
    Case("params lot size as text", "params.lot_size is '10'", {"params.json": '{"lot_size": "10"}'}),
    Case("params unknown slippage model", "params.slippage.model is 'Magic'", {"params.json": '{"slippage": "Magic"}'}),
    Case("params unknown risk key", "max_order_notionl", {"params.json": '{"risk": {"max_order_notionl": 5}}'}),
    Case("params negative risk limit", "-5", {"params.json": '{"risk": {"max_order_notional": -5}}'}),
    Case("params LIMIT without offset", "limit_offset_bps is not set", {"params.json": '{"order_type": "LIMIT"}'}),
    Case("params NaN leverage", "params.max_leverage is nan", {"params.json": '{"max_leverage": NaN}'}),
    # --- CLI arguments and environment
    Case("path-like run id", "run_id '../../etc/passwd' is not allowed", args=("--run-id", "../../etc/passwd")),
    Case("overlong run id", "run_id '" + "r" * 65 + "' is not allowed", args=("--run-id", "r" * 65)),
    Case("run id with a quote and semicolon", "run_id \"r';DROP\" is not allowed", args=("--run-id", "r';DROP")),
    Case("unknown provider", "provider 'ib' is unknown; available: ['lean', 'mock']", args=("--provider", "ib")),
    Case("portfolio value not a number", "'abc' is not a valid float", args=("--portfolio-value", "abc")),
    Case("portfolio value negative", "portfolio_value is -5.0", args=("--portfolio-value", "-5")),
    Case("portfolio value NaN", "portfolio_value is nan", args=("--portfolio-value", "nan")),
    Case("empty model version", "model_version '' must be a non-empty string", args=("--model-version", "")),
    Case("model version with a newline", "model_version 'm\\n1' must not contain control characters",
         args=("--model-version", "m\n1")),
    Case("missing required option", "Missing option '--snapshot'", command=("run", "--portfolio-value", "1",
                                                                            "--model-version", "m")),
    Case("unknown run id", "run 'run-nope' is not in", command=("rerun", "run-nope")),
    Case("lock timeout not a number", "TRADELOOP_LOCK_TIMEOUT is 'soon'", env={"TRADELOOP_LOCK_TIMEOUT": "soon"}),
    Case("lock timeout negative", "TRADELOOP_LOCK_TIMEOUT is '-1'", env={"TRADELOOP_LOCK_TIMEOUT": "-1"}),
    Case("fill batch not a number", "TRADELOOP_FILL_BATCH is '0'", env={"TRADELOOP_FILL_BATCH": "0"},
         command=("rerun", "QUEUED")),
    Case("lease seconds zero", "TRADELOOP_LEASE_SECONDS is '0'", env={"TRADELOOP_LEASE_SECONDS": "0"}),
    Case("run id reused with other inputs", "run 'SEEDED' exists with different snapshot, params",
         {"params.json": '{"risk": {"max_order_notional": 5}}'}, args=("--run-id", "SEEDED")),
]


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory):
    """A database that already holds a finished run and a queued one, so 'nothing written' is not trivially true."""
    db = tmp_path_factory.mktemp("seed") / "seed.duckdb"
    snap = load_snapshot_file(DATA / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="seed")
    with Store(db) as store:
        fb = pd.read_csv(DATA / "fallback_prices.csv")
        execute_run(store, create_run(store, snap, params=load_params(DATA / "params_pass.json"), fallback_prices=fb,
                                      run_id="SEEDED").run_id)
        create_run(store, snap, fallback_prices=fb, run_id="QUEUED")
    return db


def _prepare(case: Case, tmp_path, seeded_db):
    db = tmp_path / "t.duckdb"
    shutil.copy(seeded_db, db)
    files = {"snap.csv": GOOD_SNAPSHOT, **case.files}
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, Sparse):
            with open(path, "wb") as f:
                f.truncate(content.size)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.command is not None:
        args = list(case.command)
    else:
        args = ["run", "--snapshot", str(tmp_path / "snap.csv"), "--portfolio-value", "100000", "--model-version", "m1"]
        for name, option in (("pos.csv", "--positions"), ("fb.csv", "--fallback-prices"), ("params.json", "--params")):
            if name in files:
                args += [option, str(tmp_path / name)]
        args += [str(a) if not str(a).startswith("snap") else str(tmp_path / a) for a in case.args]
    return db, args + ["--db", str(db)]


def _counts(db):
    with Store(db, read_only=True) as s:
        return s.table_counts()


def test_every_option_of_run_that_takes_a_value_has_a_bad_input_case():
    """Read from the real command: a new ``run`` option without a bad-input case here fails this test."""
    options = {p.opts[0] for p in tradeloop_cli.commands["run"].params if not getattr(p, "is_flag", False)}
    by_file = {"snap.csv": "--snapshot", "snap.xlsx": "--snapshot", "pos.csv": "--positions",
               "fb.csv": "--fallback-prices", "params.json": "--params"}
    covered = {by_file[f] for c in CASES for f in c.files} | {a for c in CASES for a in c.args if a in options}
    covered |= {"--db"}  # bad database paths: the two tests after the table
    assert sorted(options - covered) == []
    kinds = [c.kind for c in CASES]
    assert sorted({k for k in kinds if kinds.count(k) > 1}) == []  # one case per kind: ids stay meaningful


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_cli_input_is_refused_by_name_and_writes_nothing(case, tmp_path, seeded_db):
    db, args = _prepare(case, tmp_path, seeded_db)
    before = _counts(db)
    result = CliRunner().invoke(tradeloop_cli, args, env=case.env, catch_exceptions=False)
    assert result.exit_code == case.exit, (result.exit_code, result.output)
    err = result.stderr
    assert case.phrase in err, err
    assert "Traceback" not in err
    if case.command is None or case.command[0] != "run" or "Missing" not in case.phrase:
        assert err.startswith("error: ") or err.startswith("Usage:"), err
    assert _counts(db) == before


SUBPROCESS_SAMPLE = ["snapshot price NaN", "symbol with a semicolon and SQL", "params not JSON", "path-like run id",
                     "unknown provider", "lock timeout not a number"]


@pytest.mark.parametrize("kind", SUBPROCESS_SAMPLE)
def test_the_real_program_gives_the_same_errors(kind, tmp_path, seeded_db):
    case = next(c for c in CASES if c.kind == kind)
    db, args = _prepare(case, tmp_path, seeded_db)
    before = _counts(db)
    proc = run_cli(*args, env=case.env)
    assert proc.returncode == case.exit and case.phrase in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1  # one line, no traceback
    assert _counts(db) == before


def test_a_database_path_that_is_a_directory(tmp_path):
    proc = CliRunner().invoke(tradeloop_cli, ["runs", "--db", str(tmp_path)])
    assert proc.exit_code == 2 and "is a directory" in proc.stderr


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path):
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("my notes, not a database\n")
    proc = CliRunner().invoke(tradeloop_cli, ["demo", "--db", str(bogus)])
    assert proc.exit_code == 1 and f"cannot open database {str(bogus)!r}" in proc.stderr
    assert bogus.read_text() == "my notes, not a database\n"


# --- notebook parameters: the same bad values through the Python API the notebooks call --------------------------
W = pd.DataFrame({"symbol": ["AAA", "BBB"], "weight": [0.3, 0.2], "price": [10.0, 20.0]})
NOTEBOOK_CASES = [
    ("weights not a DataFrame", lambda s: freeze_snapshot({"AAA": 0.3}, portfolio_value=1e6, model_version="m"),
     "snapshot must be a pandas DataFrame, got dict"),
    ("portfolio value as text", lambda s: freeze_snapshot(W, portfolio_value="1e6x", model_version="m"),
     "portfolio_value '1e6x' is not a number"),
    ("portfolio value infinite", lambda s: freeze_snapshot(W, portfolio_value=float("inf"), model_version="m"),
     "portfolio_value is inf"),
    ("model version None", lambda s: freeze_snapshot(W, portfolio_value=1e6, model_version=None),
     "model_version None"),
    ("weight NaN in a DataFrame", lambda s: freeze_snapshot(W.assign(weight=[0.3, float("nan")]), portfolio_value=1e6,
                                                            model_version="m"), "weight for 'BBB' is missing"),
    ("path-like run id", lambda s: create_run(s, freeze_snapshot(W, portfolio_value=1e6, model_version="m"),
                                              run_id="../x"), "run_id '../x' is not allowed"),
    ("run id not a string", lambda s: create_run(s, freeze_snapshot(W, portfolio_value=1e6, model_version="m"),
                                                 run_id=123), "run_id 123 is not allowed"),
    ("params dict with a misspelled key", lambda s: RunParams.from_dict({"cash_bufer": 0.1}),
     "unknown key(s) ['cash_bufer']"),
    ("params value as text", lambda s: RunParams.from_dict({"max_leverage": "2"}), "params.max_leverage is '2'"),
    ("positions with NaN qty", lambda s: create_run(s, freeze_snapshot(W, portfolio_value=1e6, model_version="m"),
                                                    positions=pd.DataFrame({"symbol": ["AAA"], "qty": [float("nan")]})),
     "qty for 'AAA' is missing"),
    ("unknown provider", lambda s: create_run(s, freeze_snapshot(W, portfolio_value=1e6, model_version="m"),
                                              provider="ib"), "provider 'ib' is unknown"),
    ("unknown run id", lambda s: execute_run(s, "run-nope"), "run 'run-nope' is not in"),
    ("store timeout negative", lambda s: Store(s.path, timeout=-1), "timeout is -1"),
]


@pytest.mark.parametrize("kind,call,phrase", NOTEBOOK_CASES, ids=[c[0] for c in NOTEBOOK_CASES])
def test_bad_notebook_parameters_are_refused_by_name(kind, call, phrase, tmp_path, seeded_db):
    db = tmp_path / "nb.duckdb"
    shutil.copy(seeded_db, db)
    store = Store(db)
    before = store.table_counts()
    with pytest.raises((ValidationError, RunNotFound)) as info:
        call(store)
    assert phrase in str(info.value)
    assert store.table_counts() == before


# --- one rule, one message: a snapshot and a simulation refuse the same model versions the same way --------------
@pytest.mark.parametrize("model_version", ["", "  ", "m\n1", "m\t1", "m\r", "m" * 129, None, 5])
def test_snapshot_and_simulate_refuse_the_same_model_versions(model_version):
    with pytest.raises(ValidationError) as snap:
        freeze_snapshot(W, portfolio_value=1e6, model_version=model_version)
    day = W.assign(date="2024-01-02")
    with pytest.raises(ValidationError) as sim:
        simulate(day[["date", "symbol", "weight"]], day[["date", "symbol", "price"]], portfolio_value=1e6,
                 model_version=model_version)
    assert str(sim.value) == str(snap.value)
    assert str(snap.value).startswith(f"model_version {model_version!r} must ")


def test_a_model_version_of_128_characters_is_allowed_on_both_paths():
    day = W.assign(date="2024-01-02")
    assert freeze_snapshot(W, portfolio_value=1e6, model_version="m" * 128).model_version == "m" * 128
    assert simulate(day[["date", "symbol", "weight"]], day[["date", "symbol", "price"]], portfolio_value=1e6,
                    model_version="m" * 128).model_version == "m" * 128
