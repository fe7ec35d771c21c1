"""DecisionSnapshot: validated where it enters, frozen, and identified by its content."""

import numpy as np
import pandas as pd
import pytest

from tradeloop import ValidationError, freeze_snapshot, load_params, load_snapshot_file
from tradeloop.workflows.params import RunParams

GOOD = dict(symbol=["AAPL", "MSFT"], weight=[0.5, 0.3], price=[190.0, 410.0])


def freeze(**changes):
    return freeze_snapshot(pd.DataFrame({**GOOD, **changes}), portfolio_value=1e6, model_version="m1")


def test_same_content_gives_the_same_snapshot_id():
    a = freeze()
    b = freeze_snapshot(pd.DataFrame(GOOD).iloc[::-1], portfolio_value=1e6, model_version="m1")
    assert a.snapshot_id == b.snapshot_id and a == b
    assert freeze(weight=[0.5, 0.31]).snapshot_id != a.snapshot_id
    assert freeze_snapshot(pd.DataFrame(GOOD), portfolio_value=1e6, model_version="m2").snapshot_id != a.snapshot_id


def test_missing_price_is_allowed_and_kept_as_nan():
    snap = freeze(price=[190.0, np.nan])
    assert np.isnan(snap.weights.loc[1, "price"])


@pytest.mark.parametrize("changes, message", [
    (dict(weight=[0.5, np.nan]), "weight for 'MSFT' is missing"),
    (dict(weight=[0.5, np.inf]), "weight for 'MSFT' is inf; weight must be finite"),
    (dict(price=[190.0, -1.0]), "price for 'MSFT' is -1.0; price must be > 0"),
    (dict(price=[0.0, 410.0]), "price for 'AAPL' is 0.0; price must be > 0"),
    (dict(price=[190.0, np.inf]), "price for 'MSFT' is inf; price must be finite"),
    (dict(symbol=["AAPL", "AAPL"]), "duplicate symbol(s) ['AAPL']"),
    (dict(symbol=["AAPL", "X;DROP TABLE"]), "symbol 'X;DROP TABLE' in row 2 is not allowed"),
    (dict(symbol=["AAPL", None]), "symbol is missing in row 2"),
    (dict(weight=["0.5", "half"]), "weight for 'MSFT' is 'half'; weight must be a finite number"),
    (dict(lot_size=[1, 0]), "lot_size for 'MSFT' is 0.0; lot_size must be > 0"),
    (dict(lot_size=[1, 2.5]), "lot_size for 'MSFT' is 2.5; lot_size must be a whole number"),
    (dict(wieght=[1, 2]), "unknown column(s) ['wieght']"),
])
def test_bad_weights_are_refused_with_the_field_and_symbol(changes, message):
    with pytest.raises(ValidationError) as e:
        freeze(**changes)
    assert message in str(e.value)


def test_missing_column_and_empty_table():
    with pytest.raises(ValidationError, match=r"missing column\(s\) \['weight'\]"):
        freeze_snapshot(pd.DataFrame({"symbol": ["A"]}), portfolio_value=1, model_version="m")
    with pytest.raises(ValidationError, match="is empty"):
        freeze_snapshot(pd.DataFrame({"symbol": [], "weight": []}), portfolio_value=1, model_version="m")


@pytest.mark.parametrize("value", [-5, 0, float("nan"), "abc"])
def test_bad_portfolio_value(value):
    with pytest.raises(ValidationError, match="portfolio_value"):
        freeze_snapshot(pd.DataFrame(GOOD), portfolio_value=value, model_version="m1")


def test_csv_distinguishes_an_empty_price_from_a_literal_nan(tmp_path):
    f = tmp_path / "w.csv"
    f.write_text("symbol,weight,price\nAAPL,0.5,\nMSFT,0.3,410\n")
    assert np.isnan(load_snapshot_file(f, portfolio_value=1e6, model_version="m").weights.loc[0, "price"])
    f.write_text("symbol,weight,price\nAAPL,0.5,NaN\nMSFT,0.3,410\n")
    with pytest.raises(ValidationError, match="price for 'AAPL' is 'NaN'"):
        load_snapshot_file(f, portfolio_value=1e6, model_version="m")


def test_parquet_snapshot(tmp_path):
    f = tmp_path / "w.parquet"
    pd.DataFrame(GOOD).to_parquet(f)
    assert load_snapshot_file(f, portfolio_value=1e6, model_version="m1") == freeze()


def test_non_utf8_and_missing_files(tmp_path):
    f = tmp_path / "w.csv"
    f.write_bytes(b"symbol,weight,price\n\xff\xfeA,0.5,1\n")
    with pytest.raises(ValidationError, match="not UTF-8"):
        load_snapshot_file(f, portfolio_value=1e6, model_version="m")
    with pytest.raises(ValidationError, match="does not exist"):
        load_snapshot_file(tmp_path / "nope.csv", portfolio_value=1e6, model_version="m")


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ('{"cash_bufer": 0.1}', "unknown key(s) ['cash_bufer']"),
    ('{"cash_buffer": 1.5}', "params.cash_buffer is 1.5"),
    ('{"lot_size": 0}', "params.lot_size is 0"),
    ('{"risk": {"sector_cap": "high"}}', "risk.sector_cap is 'high'"),
    ('{"slippage": {"model": "Magic"}}', "params.slippage.model is 'Magic'"),
    ('{"commission": {"model": "PerShareCommission", "rate": -1}}', "params.commission.rate is -1"),
    ('[1, 2]', "params must be a JSON object"),
])
def test_bad_params_files(tmp_path, text, message):
    f = tmp_path / "p.json"
    f.write_text(text)
    with pytest.raises(ValidationError) as e:
        load_params(f)
    assert message in str(e.value)


def test_params_round_trip():
    p = load_params("data/params_pass.json")
    assert RunParams.from_dict(p.to_dict()) == p
