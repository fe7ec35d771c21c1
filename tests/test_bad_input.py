"""Bad input, table-driven: every kind gives a one-line error naming the bad value, a documented exit code, and
writes nothing (table counts before == after, on a database that already holds a run).

CLI cases go through the real click command in-process (``CliRunner``: the same code path as the program, ~50x
faster than a subprocess each); a sample of them is repeated as real subprocesses to prove the two agree.
"Notebook parameters": the notebooks (issue 3) call the Python API, so those cases call the same functions with the
values a notebook's parameters cell would pass.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
from tradeloop.core.validate import MAX_TABLE_BYTES, MAX_TABLE_ROWS

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


def _parquet(**columns) -> bytes:
    """A Parquet file's bytes; numpy arrays keep their dtype (uint64 lot sizes, int64 dates)."""
    buf = io.BytesIO()
    pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}), buf)
    return buf.getvalue()


@dataclass(frozen=True)
class ManyRows:
    """A Parquet file of ``rows`` identical rows: a few hundred kB on disk, gigabytes once read."""

    rows: int

    def write(self, path):
        symbol = pa.DictionaryArray.from_arrays(pa.array(np.zeros(self.rows, dtype=np.int8)), pa.array(["AAA"]))
        weight = pa.DictionaryArray.from_arrays(pa.array(np.zeros(self.rows, dtype=np.int8)), pa.array([0.1]))
        pq.write_table(pa.table({"symbol": symbol, "weight": weight}), path)


def _sim(*extra):
    """``simulate`` on w.csv / p.csv (or the .parquet names given in ``extra``)."""
    args = {"--weights": "w.csv", "--prices": "p.csv"}
    rest = []
    for a, b in zip(extra[::2], extra[1::2]):
        if a in args:
            args[a] = b
        else:
            rest += [a, b]
    return ("simulate", *[x for kv in args.items() for x in kv], "--portfolio-value", "100000", "--model-version",
            "m1", "--no-progress", *rest)


SIM_W = _csv("date,symbol,weight", "2024-01-02,AAA,0.3", "2024-01-03,AAA,0.2")
SIM_P = _csv("date,symbol,price", "2024-01-02,AAA,10", "2024-01-03,AAA,11")


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
    # --- numbers whose share count would not be exact (beyond 2**53, or not finite)
    Case("portfolio value too large for exact quantities", "target quantity for 'AAA' is 3e+18 shares",
         args=("--portfolio-value", "1e20")),
    Case("portfolio value overflowing the share count", "target quantity for 'AAA' is inf shares",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.9,1e-12")}, ("--portfolio-value", "1e300")),
    Case("snapshot price tiny", "price for 'AAA' is 1e-300; price must be from 1e-12 to 1e+15",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,1e-300")}),
    Case("snapshot price subnormal", "price for 'AAA' is 5e-324; price must be from 1e-12 to 1e+15",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,5e-324")}),
    Case("fallback price tiny", "fallback prices: price for 'AAA' is 1e-300",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.3,", "BBB,0.2,20"), "fb.csv": _csv("symbol,price", "AAA,1e-300")}),
    Case("positions qty beyond 2**53", "qty for 'AAA' is 1e19", {"pos.csv": _csv("symbol,qty", "AAA,1e19")}),
    Case("positions qty rounded as a float (2**53 + 1)", "qty for 'AAA' is 9007199254740993",
         {"pos.csv": _csv("symbol,qty", "AAA,9007199254740993")}),
    Case("snapshot price beyond 1e15", "price for 'AAA' is 1e+300; price must be from 1e-12 to 1e+15",
         {"snap.csv": _csv("symbol,weight,price", "AAA,0.0,1e300"), "pos.csv": _csv("symbol,qty", "AAA,1000000000000000")}),
    Case("lot size beyond 2**53 in CSV", "lot_size for 'AAA' is 1e19",
         {"snap.csv": _csv("symbol,weight,price,lot_size", "AAA,0.1,10,1e19")}),
    Case("lot size uint64 in Parquet", "lot_size for 'AAA' is 10000000000000000000",
         {"snap.parquet": _parquet(symbol=["AAA"], weight=[0.1], price=[10.0],
                                   lot_size=np.array([10**19], dtype=np.uint64))}, ("--snapshot", "snap.parquet")),
    Case("params lot size 10**30", "params.lot_size is 1000000000000000000000000000000",
         {"params.json": '{"lot_size": 1000000000000000000000000000000}'}),
    # --- rates and basis points: bounded, so no price <= 0 and no infinite fee is ever stored
    Case("params slippage of 200%", "params.slippage.bps is 20000; it must be >= 0 and < 10000",
         {"params.json": '{"slippage": {"model": "FixedBpsSlippage", "bps": 20000}}'}),
    Case("params limit offset 1e308", "params.limit_offset_bps is 1e+308; it must be > -10000 and < 10000",
         {"params.json": '{"order_type": "LIMIT", "limit_offset_bps": 1e308}'}),
    Case("params per-share commission 1e308", "params.commission.rate is 1e+308",
         {"params.json": '{"commission": {"model": "PerShareCommission", "rate": 1e308}}'}),
    Case("params commission minimum 1e300", "params.commission.minimum is 1e+300",
         {"params.json": '{"commission": {"model": "PerShareCommission", "minimum": 1e300}}'}),
    Case("params bps commission of 100%", "params.commission.bps is 10000",
         {"params.json": '{"commission": {"model": "BpsCommission", "bps": 10000}}'}),
    Case("params participation above 1", "params.liquidity.max_rate is 2",
         {"params.json": '{"liquidity": {"model": "VolumeParticipation", "max_rate": 2}}'}),
    Case("params integer of 5000 digits", "is not usable JSON", {"params.json": '{"lot_size": ' + "9" * 5000 + "}"}),
    Case("params nested 100k deep", "is nested too deeply", {"params.json": "[" * 100_000 + "]" * 100_000}),
    # --- tables that expand beyond the row limit
    Case("Parquet expanding beyond the row limit", f"has {MAX_TABLE_ROWS + 1:,} rows; the limit is",
         {"snap.parquet": ManyRows(MAX_TABLE_ROWS + 1)}, ("--snapshot", "snap.parquet")),
    # --- settings, checked before anything is written
    Case("lease seconds not a number", "TRADELOOP_LEASE_SECONDS is 'abc'", env={"TRADELOOP_LEASE_SECONDS": "abc"}),
    Case("fill batch zero on a new run", "TRADELOOP_FILL_BATCH is '0'", env={"TRADELOOP_FILL_BATCH": "0"}),
    # --- click usage errors: one line too
    Case("portfolio value in hex", "Invalid value for '--portfolio-value': '0x10' is not a valid float",
         args=("--portfolio-value", "0x10")),
    Case("workers zero", "Invalid value for '--workers': 0 is not in the range x>=1",
         command=("batch", "--snapshots", "snap.csv", "--portfolio-value", "1", "--model-version", "m",
                  "--workers", "0")),
    Case("unknown option", "No such option '--portfolio'", args=("--portfolio", "5")),
    # --- simulate: the date rules and exact quantities
    Case("simulate dates less than a second apart", "date '2024-01-02 00:00:00.5' in row 2 has a fraction of a second",
         {"w.csv": _csv("date,symbol,weight", "2024-01-02 00:00:00,AAA,0.3", "2024-01-02 00:00:00.5,AAA,0.2"),
          "p.csv": SIM_P}, command=_sim()),
    Case("simulate impossible date", "prices: date '2024-02-30' in row 2 is not a valid date",
         {"w.csv": SIM_W, "p.csv": _csv("date,symbol,price", "2024-01-02,AAA,10", "2024-02-30,AAA,11")},
         command=_sim()),
    Case("simulate float dates", "column 'date' holds float64 values",
         {"w.parquet": _parquet(date=[20240102.0], symbol=["AAA"], weight=[0.3]), "p.csv": SIM_P},
         command=_sim("--weights", "w.parquet")),
    Case("simulate integer date that is not YYYYMMDD", "date '20241302' in row 2 is not a valid date (YYYYMMDD)",
         {"w.csv": SIM_W, "p.parquet": _parquet(date=np.array([20240102, 20241302]), symbol=["AAA", "AAA"],
                                                price=[10.0, 11.0])}, command=_sim("--prices", "p.parquet")),
    Case("simulate price tiny", "price for 'AAA@2024-01-03' is 1e-300; price must be from 1e-12 to 1e+15",
         {"w.csv": SIM_W, "p.csv": _csv("date,symbol,price", "2024-01-02,AAA,10", "2024-01-03,AAA,1e-300")},
         command=_sim()),
    Case("simulate position beyond 2**53", "qty for 'AAA' is 1e19",
         {"w.csv": SIM_W, "p.csv": SIM_P, "pos.csv": _csv("symbol,qty", "AAA,1e19")},
         command=_sim("--positions", "pos.csv")),
    Case("simulate lot size uint64 in Parquet", "lot_size for 'AAA@2024-01-02' is 10000000000000000000",
         {"w.csv": SIM_W, "p.parquet": _parquet(date=["2024-01-02"], symbol=["AAA"], price=[10.0],
                                                lot_size=np.array([10**19], dtype=np.uint64))},
         command=_sim("--prices", "p.parquet")),
    Case("simulate portfolio value too large", "target quantity for 'AAA' on 2024-01-02 is 3e+18 shares",
         {"w.csv": SIM_W, "p.csv": SIM_P}, command=_sim("--portfolio-value", "1e20")),
    # --- rebalancing controls: the risk key and value named, nothing written
    Case("params on_breach action not allowed", "risk.on_breach.max_turnover is 'reject'; allowed: 'resize', 'block'",
         {"params.json": '{"risk": {"max_turnover": 0.5, "on_breach": {"max_turnover": "reject"}}}'}),
    Case("params on_breach unknown rule", "risk.on_breach has unknown rule 'max_tunover'",
         {"params.json": '{"risk": {"on_breach": {"max_tunover": "block"}}}'}),
    Case("params min_order_qty not whole", "risk.min_order_qty is 2.5",
         {"params.json": '{"risk": {"min_order_qty": 2.5}}'}),
    Case("params restricted not a list", "risk.restricted.no_buy is 'AAA'",
         {"params.json": '{"risk": {"restricted": {"no_buy": "AAA"}}}'}),
    Case("run adv missing under max_adv_participation", "adv is missing for 'BBB'",
         {"snap.csv": "symbol,weight,price,sector,adv\nAAA,0.3,10,Tech,1000\nBBB,0.2,20,Energy,\n",
          "params.json": '{"risk": {"max_adv_participation": 0.1}}'}),
    Case("simulate adv missing under max_adv_participation", "adv is missing for 'AAA' on 2024-01-03",
         {"w.csv": SIM_W, "p.csv": _csv("date,symbol,price,adv", "2024-01-02,AAA,10,5000", "2024-01-03,AAA,11,"),
          "params.json": '{"risk": {"max_adv_participation": 0.5}}'}, command=_sim("--params", "params.json")),
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
        if isinstance(content, ManyRows):
            content.write(path)
        elif isinstance(content, Sparse):
            with open(path, "wb") as f:
                f.truncate(content.size)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.command is not None:
        args = [str(tmp_path / a) if a in files else a for a in case.command]
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
    by_file = {"snap.csv": "--snapshot", "snap.xlsx": "--snapshot", "snap.parquet": "--snapshot",
               "pos.csv": "--positions", "fb.csv": "--fallback-prices", "params.json": "--params"}
    covered = {by_file[f] for c in CASES if c.command is None for f in c.files} | {a for c in CASES for a in c.args if a in options}
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
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, usage errors included
    assert _counts(db) == before


SUBPROCESS_SAMPLE = ["snapshot price NaN", "symbol with a semicolon and SQL", "params not JSON", "path-like run id",
                     "unknown provider", "lock timeout not a number", "portfolio value too large for exact quantities",
                     "snapshot price subnormal", "lot size uint64 in Parquet", "params nested 100k deep",
                     "portfolio value in hex", "simulate integer date that is not YYYYMMDD"]


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
    assert proc.exit_code == 2 and f"{str(bogus)!r} is not a tradeloop database" in proc.stderr
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


# --- the rest of the command line's promises: a closed pipe, a full disk, the date rules --------------------------
def test_a_reader_closing_the_pipe_ends_output_quietly(seeded_db, tmp_path):
    """``tradeloop show … | head``: the pipe is closed before the program writes; no error line, exit 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tradeloop", "show", "SEEDED", "--db", str(seeded_db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before the first line is written (the program is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def _file_size_limit(limit: int):
    """A subprocess pre-exec hook: writes beyond ``limit`` bytes fail with EFBIG (a full disk, without root)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("limit", [8 * 1024, 60 * 1024], ids=["while creating the database", "while executing"])
def test_a_full_disk_is_one_line_with_its_own_exit_code(limit, tmp_path):
    import subprocess
    import sys

    db = tmp_path / "full.duckdb"
    proc = subprocess.run([sys.executable, "-m", "tradeloop", "demo", "--db", str(db)], capture_output=True,
                          text=True, preexec_fn=_file_size_limit(limit), cwd=tmp_path, timeout=120)
    assert proc.returncode == 6, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"error: disk full while writing {str(db)!r}; nothing was committed for this step")
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_a_full_tmpfs_is_reported_the_same_way(tmp_path):
    """A real full file system (needs root to mount a 2 MB tmpfs; skipped where that is not allowed)."""
    import subprocess
    import sys

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        db = mnt / "t.duckdb"
        proc = subprocess.run([sys.executable, "-m", "tradeloop", "demo", "--db", str(db)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 6, (proc.stdout, proc.stderr)
        assert proc.stderr == f"error: disk full while writing {str(db)!r}; nothing was committed for this step\n"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


DATE_RULES = [
    ("YYYYMMDD integers (Parquet)", np.array([20240102, 20240103]), ["2024-01-02", "2024-01-03"]),
    ("YYYYMMDD text", ["20240102", "20240103"], ["2024-01-02", "2024-01-03"]),
    ("offsets converted to UTC", ["2024-01-02T09:00:00+01:00", "2024-01-02T08:00:00-05:00"],
     ["2024-01-02 08:00:00", "2024-01-02 13:00:00"]),
    ("naive values are UTC", ["2024-01-02 08:00:00", "2024-01-02T13:00:00Z"], ["2024-01-02 08:00:00", "2024-01-02 13:00:00"]),
    ("a time zone aware column", pd.to_datetime(["2024-01-02 09:00", "2024-01-03 09:00"]).tz_localize("Europe/Paris"),
     ["2024-01-02 08:00:00", "2024-01-03 08:00:00"]),
]


@pytest.mark.parametrize("kind,dates,expected", DATE_RULES, ids=[d[0] for d in DATE_RULES])
def test_the_date_rules_accept(kind, dates, expected):
    w = pd.DataFrame({"date": dates, "symbol": ["AAA", "AAA"], "weight": [0.3, 0.2]})
    p = pd.DataFrame({"date": dates, "symbol": ["AAA", "AAA"], "price": [10.0, 11.0]})
    sim = simulate(w, p, portfolio_value=1e5, model_version="m", progress=False)
    assert [pd.Timestamp(d) for d in sim.dates] == [pd.Timestamp(e) for e in expected]


def test_one_date_twice_in_two_time_zones_is_a_duplicate():
    w = pd.DataFrame({"date": ["2024-01-02T00:00:00Z", "2024-01-02T01:00:00+01:00"], "symbol": ["AAA", "AAA"],
                      "weight": [0.3, 0.2]})
    p = pd.DataFrame({"date": ["2024-01-02"], "symbol": ["AAA"], "price": [10.0]})
    with pytest.raises(ValidationError, match="duplicate row for AAA@2024-01-02"):
        simulate(w, p, portfolio_value=1e5, model_version="m", progress=False)
