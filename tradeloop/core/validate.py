"""Every validation rule of tradeloop, in one place: input tables, numbers, symbols, ids and model versions.

Validation happens where data enters (a snapshot, a params file, a simulation's inputs, a setting), always through
these functions, so the core functions can trust their inputs and each rule has one message. Every message names the
field (the table, the column, the symbol or row) and what is allowed.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ValidationError

__all__ = [
    "read_table", "validate_symbols", "validate_positions", "validate_prices", "numeric_column", "check_columns",
    "check_number", "check_whole", "check_model_version", "check_run_id", "check_simulation_id", "MAX_TABLE_BYTES",
    "SYMBOL_PATTERN", "SYMBOL_RULE", "RUN_ID_PATTERN", "MAX_MODEL_VERSION", "MAX_TABLE_ROWS", "MAX_QTY", "MIN_PRICE",
    "MAX_PRICE", "check_quantities",
]

#: A symbol is 1-32 characters of letters, digits and ``. _ -``, starting with a letter or digit. It starts every
#: client order id (``{symbol}-B-…``), which is promised safe in file names and shells, so ``/`` (a path
#: separator), ``:``, quotes, semicolons, spaces and newlines are refused: write ``BRK/B`` as ``BRK.B``.
SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
#: How :data:`SYMBOL_PATTERN` is described in error messages.
SYMBOL_RULE = "1-32 letters, digits and . _ - (starting with a letter or digit; no / : spaces, quotes or semicolons)"
#: A run id is 1-64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit (it names files too).
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Longest model version (it is part of every client_order_id hash and printed in reports).
MAX_MODEL_VERSION = 128
#: Input files larger than this are refused before they are read (a single snapshot is thousands of rows, not GBs).
MAX_TABLE_BYTES = 512 * 1024 * 1024
#: Input tables with more rows than this are refused before they are read (Parquet: from the file's metadata, so a
#: small, highly compressed file cannot expand to gigabytes first).
MAX_TABLE_ROWS = 20_000_000
#: Share counts (positions, lot sizes, order quantities) must be below 2**53 in absolute value: every integer below
#: it is exact as a float64, so sizing, cash and fill arithmetic never round or wrap a quantity.
MAX_QTY = 2**53
#: Prices (snapshot, fallback and history prices) are from MIN_PRICE to MAX_PRICE: below, a share count or a fill
#: price after slippage (down to 1e-16 of the price) leaves float range or rounds to 0; above, a limit or fill price
#: after slippage, or a notional, could overflow.
MIN_PRICE = 1e-12
MAX_PRICE = 1e15


def check_number(what: str, value, *, minimum: float = 0.0, inclusive: bool = True,
                 below: float | None = None) -> float:
    """A finite real number ``>= minimum`` (``> minimum`` when not ``inclusive``) and ``< below`` if given; returns it
    as a float.

    Booleans and text are refused (``"10"`` in a JSON file is a mistake, not a number); the message names the field.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{what} is {value!r}; it must be a finite number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{what} is {value!r}; it must be a finite number")
    low = number < minimum or (not inclusive and number == minimum)
    if low or (below is not None and number >= below):
        rule = f"{'>=' if inclusive else '>'} {minimum:g}" + (f" and < {below:g}" if below is not None else "")
        raise ValidationError(f"{what} is {value!r}; it must be {rule}")
    return number


def check_whole(what: str, value, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number (an integer, not a bool or a float) from ``minimum`` to ``maximum``; returns it as an int.

    Without ``maximum`` the value must still be below :data:`MAX_QTY` (beyond it a count is not exact as a float).
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and value >= minimum and (value <= maximum if maximum is not None else abs(value) < MAX_QTY):
        return int(value)
    if maximum is None and ok and value >= minimum:
        raise ValidationError(f"{what} is {value!r}; it must be a whole number below 2**53 = {MAX_QTY:,} (larger "
                              "counts are not exact)")
    allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    raise ValidationError(f"{what} is {value!r}; it must be a whole number {allowed}")


def check_model_version(model_version) -> str:
    """A non-empty string of at most :data:`MAX_MODEL_VERSION` characters without control characters.

    The same rule for a snapshot, a run and a simulation: the model version is hashed into every order id.
    """
    if not isinstance(model_version, str) or not model_version.strip() or len(model_version) > MAX_MODEL_VERSION:
        raise ValidationError(
            f"model_version {model_version!r} must be a non-empty string of at most {MAX_MODEL_VERSION} characters")
    if any(ch in model_version for ch in "\n\r\t\0"):
        raise ValidationError(f"model_version {model_version!r} must not contain control characters")
    return model_version


def check_run_id(run_id) -> str:
    """A run id matching :data:`RUN_ID_PATTERN`."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValidationError(
            f"run_id {run_id!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-' starting with a letter "
            "or digit"
        )
    return run_id


def check_simulation_id(simulation_id) -> str:
    """A simulation id: a symbol-like name (:data:`SYMBOL_PATTERN`), since it prefixes every run id it makes."""
    if not isinstance(simulation_id, str) or not SYMBOL_PATTERN.fullmatch(simulation_id):
        raise ValidationError(f"simulation_id {simulation_id!r} is not allowed; use {SYMBOL_RULE}")
    return simulation_id


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet file as raw columns; numbers are parsed later by :func:`numeric_column`.

    CSV cells are read as text so that an empty cell (missing) and a literal ``NaN`` (invalid) stay distinguishable.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{what} file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise ValidationError(f"{what} file {str(path)!r} is {size:,} bytes; the limit is {MAX_TABLE_BYTES:,} bytes")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            _check_parquet_rows(path, what)
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ""):
            # index_col=False: a first row with more fields than the header must not silently become an index.
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8",
                                    index_col=False, nrows=MAX_TABLE_ROWS + 1)
            if len(table) > MAX_TABLE_ROWS:
                raise ValidationError(f"{what} file {str(path)!r} has more than {MAX_TABLE_ROWS:,} rows; the limit "
                                      f"is {MAX_TABLE_ROWS:,} rows")
            return table
    except pd.errors.ParserWarning:
        raise ValidationError(f"{what} file {str(path)!r} could not be parsed: a row has more fields than the header "
                              "row") from None
    except UnicodeDecodeError as e:
        raise ValidationError(f"{what} file {str(path)!r} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{what} file {str(path)!r} is empty; it needs a header row and at least one row") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        raise ValidationError(f"{what} file {str(path)!r} could not be parsed: {str(e).strip().splitlines()[0]}") from None
    raise ValidationError(f"{what} file {str(path)!r} has suffix {suffix!r}; use .csv or .parquet")


def _check_parquet_rows(path: Path, what: str) -> None:
    """Refuse a Parquet file whose metadata declares more than :data:`MAX_TABLE_ROWS` rows (nothing is decoded)."""
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    if rows > MAX_TABLE_ROWS:
        raise ValidationError(f"{what} file {str(path)!r} has {rows:,} rows; the limit is {MAX_TABLE_ROWS:,} rows")


def check_columns(df: pd.DataFrame, what: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """Refuse a table with a missing required column or a column nobody reads (usually a misspelling)."""
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    cols = [str(c) for c in df.columns]
    missing = [c for c in required if c not in cols]
    if missing:
        raise ValidationError(f"{what} is missing column(s) {missing}; it has {cols}; required: {list(required)}")
    unknown = [c for c in cols if c not in required and c not in optional]
    if unknown:
        raise ValidationError(
            f"{what} has unknown column(s) {unknown}; allowed: {list(required) + list(optional)}"
        )
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise ValidationError(f"{what} has duplicate column(s) {dupes}")
    if len(df) == 0:
        raise ValidationError(f"{what} is empty; it needs at least one row")


def validate_symbols(symbols: pd.Series, what: str, *, keys: pd.DataFrame | None = None) -> pd.Series:
    """Return the symbols as strings; refuse missing, malformed or duplicate symbols (per key group, if given)."""
    missing = symbols.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValidationError(f"{what}: symbol is missing in row {row + 1}")
    out = symbols.astype(str)
    bad = ~out.str.fullmatch(SYMBOL_PATTERN.pattern).to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"{what}: symbol {out.iloc[row]!r} in row {row + 1} is not allowed; symbols are {SYMBOL_RULE}"
        )
    frame = pd.DataFrame({"symbol": out.to_numpy()}) if keys is None else keys.reset_index(drop=True).assign(
        symbol=out.to_numpy()
    )
    dup = frame.duplicated(keep=False).to_numpy()
    if dup.any():
        names = sorted(set(out[dup]))
        raise ValidationError(f"{what}: duplicate symbol(s) {names[:10]}{' …' if len(names) > 10 else ''}")
    return out


def numeric_column(
    df: pd.DataFrame,
    column: str,
    what: str,
    symbols: pd.Series,
    *,
    allow_missing: bool = False,
    positive: bool = False,
    nonnegative: bool = False,
    integer: bool = False,
    price: bool = False,
) -> np.ndarray:
    """Parse and check one numeric column; return float64 values (NaN only where missing is allowed).

    Text cells are parsed strictly: an empty cell is missing, ``'NaN'``, ``'inf'`` or ``'abc'`` are errors.
    """
    raw = df[column]
    if raw.dtype == bool:
        raise ValidationError(f"{what}: column {column!r} is boolean; it must be numeric")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        given_nan = np.zeros(len(values), dtype=bool) if allow_missing else np.isnan(values)
    else:
        text = raw.astype("string").str.strip()
        empty = text.isna().to_numpy() | (text.fillna("") == "").to_numpy()
        values = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        unparsable = np.isnan(values) & ~empty
        if unparsable.any():
            i = int(np.flatnonzero(unparsable)[0])
            raise ValidationError(
                f"{what}: {column} for {symbols.iloc[i]!r} is {raw.iloc[i]!r}; {column} must be a finite number"
            )
        given_nan = empty & (not allow_missing)
    if given_nan.any():
        i = int(np.flatnonzero(given_nan)[0])
        raise ValidationError(f"{what}: {column} for {symbols.iloc[i]!r} is missing; {column} must be a finite number")
    present = ~np.isnan(values)
    checks = [
        (~np.isfinite(values) & present, "must be finite"),
        ((values <= 0) & present if positive else None, "must be > 0"),
        ((values < 0) & present if nonnegative else None, "must be >= 0"),
        ((values != np.round(values)) & present & np.isfinite(values) if integer else None, "must be a whole number"),
        (((values < MIN_PRICE) | (values > MAX_PRICE)) & present if price else None,
         f"must be from {MIN_PRICE:g} to {MAX_PRICE:g}"),
    ]
    for mask, rule in checks:
        if mask is not None and mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValidationError(f"{what}: {column} for {symbols.iloc[i]!r} is {float(values[i])!r}; {column} {rule}")
    if integer:
        # 2**53 + 1 parses to the float 2**53: refusing from 2**53 on also catches every value that was rounded.
        huge = present & (np.abs(values) >= MAX_QTY)
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            raise ValidationError(f"{what}: {column} for {symbols.iloc[i]!r} is {_raw(raw.iloc[i])}; {column} must be "
                                  f"below 2**53 = {MAX_QTY:,} in absolute value (larger counts are not exact)")
    return values


def _raw(value) -> str:
    """A cell as the user wrote it: text as is, numbers without a float's rounding where they are integers."""
    if isinstance(value, (str, numbers.Integral)):
        return str(value)
    return repr(float(value))


def check_quantities(qty: np.ndarray, label, what: str = "order quantity", skip: np.ndarray | None = None) -> None:
    """Refuse computed share counts that are not finite or not below :data:`MAX_QTY` (the float64 intermediate of a
    sizing step, before it becomes an int64), except where ``skip`` is True; ``label(i)`` names row ``i``."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(qty) < MAX_QTY)
    if skip is not None:
        bad &= ~skip
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{what} for {label(i)} is {float(qty[i]):.6g} shares; quantities must be below 2**53 = "
                              f"{MAX_QTY:,} (check the price, portfolio value and lot size)")


def validate_positions(df: pd.DataFrame, what: str = "positions") -> pd.DataFrame:
    """``symbol``, ``qty`` (whole numbers, may be negative for shorts) -> a clean frame sorted by symbol."""
    check_columns(df, what, ("symbol", "qty"), ())
    symbols = validate_symbols(df["symbol"], what)
    qty = numeric_column(df, "qty", what, symbols, integer=True)
    return pd.DataFrame({"symbol": symbols.to_numpy(dtype=object), "qty": qty.astype("int64")}).sort_values(
        "symbol", kind="stable").reset_index(drop=True)


def validate_prices(df: pd.DataFrame, what: str = "fallback prices") -> pd.DataFrame:
    """``symbol``, ``price`` (finite, > 0) -> a clean frame sorted by symbol."""
    check_columns(df, what, ("symbol", "price"), ())
    symbols = validate_symbols(df["symbol"], what)
    price = numeric_column(df, "price", what, symbols, positive=True, price=True)
    return pd.DataFrame({"symbol": symbols.to_numpy(dtype=object), "price": price}).sort_values(
        "symbol", kind="stable").reset_index(drop=True)


#: The ``risk`` keys of the rebalancing controls (:mod:`tradeloop.core.controls`), checked by :func:`check_controls`.
CONTROL_FIELDS = ("min_order_notional", "min_order_qty", "no_trade_band", "no_trade_band_relative", "max_turnover",
                  "restricted", "max_adv_participation", "max_orders", "on_breach")
_RESTRICTED_LISTS = ("no_buy", "no_trade")


def check_controls(limits) -> None:
    """Check the rebalancing controls of a :class:`~tradeloop.core.risk.RiskLimits` (normalizing ``restricted``
    and ``on_breach`` into sorted plain dicts); every message names the ``risk.`` field and the value."""
    from .codes import allowed_actions, risk_rule_names

    for name in ("min_order_notional", "no_trade_band", "no_trade_band_relative", "max_turnover",
                 "max_adv_participation"):
        value = getattr(limits, name)
        if value is not None:
            check_number(f"risk.{name}", value, inclusive=False)
    for name in ("min_order_qty", "max_orders"):
        value = getattr(limits, name)
        if value is not None:
            check_whole(f"risk.{name}", value)
    restricted = limits.restricted
    if not isinstance(restricted, dict) or not set(restricted) <= set(_RESTRICTED_LISTS):
        raise ValidationError(f"risk.restricted is {restricted!r}; it must be an object with keys "
                              f"{list(_RESTRICTED_LISTS)}, each a list of symbols")
    clean = {}
    for key, symbols in restricted.items():
        if isinstance(symbols, str) or not isinstance(symbols, (list, tuple)):
            raise ValidationError(f"risk.restricted.{key} is {symbols!r}; it must be a list of symbols")
        for s in symbols:
            if not isinstance(s, str) or not SYMBOL_PATTERN.fullmatch(s):
                raise ValidationError(f"risk.restricted.{key} has symbol {s!r}; use {SYMBOL_RULE}")
        if symbols:
            clean[key] = sorted(set(symbols))
    object.__setattr__(limits, "restricted", clean)
    on_breach = limits.on_breach
    if not isinstance(on_breach, dict):
        raise ValidationError(f"risk.on_breach is {on_breach!r}; it must be an object of rule -> action")
    rules = risk_rule_names()
    for rule, action in on_breach.items():
        if rule not in rules:
            raise ValidationError(f"risk.on_breach has unknown rule {rule!r}; rules: {list(rules)}")
        if action not in allowed_actions(rule):
            raise ValidationError(f"risk.on_breach.{rule} is {action!r}; allowed: "
                                  f"{', '.join(repr(a) for a in allowed_actions(rule))}")
    object.__setattr__(limits, "on_breach", dict(sorted(on_breach.items())))
