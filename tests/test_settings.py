"""Settings: every TRADELOOP_* variable read in one place, checked with a one-line error naming the variable."""

from pathlib import Path

import pytest

from tradeloop import ValidationError
from tradeloop.settings import Settings
from tradeloop.workflows.run import DEFAULT_FILL_BATCH, DEFAULT_LEASE_SECONDS


def test_defaults_without_any_variable():
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.db, s.lock_timeout, s.fill_batch, s.lease_seconds, s.crash_at) == (
        Path("tradeloop.duckdb"), 30.0, DEFAULT_FILL_BATCH, DEFAULT_LEASE_SECONDS, None)
    assert (s.data_dir / "sample_snapshot.csv").is_file()


def test_every_variable_is_read():
    s = Settings.from_env({"TRADELOOP_DB": "/x/y.duckdb", "TRADELOOP_LOCK_TIMEOUT": "2.5", "TRADELOOP_FILL_BATCH": "7",
                           "TRADELOOP_LEASE_SECONDS": "60", "TRADELOOP_DATA": "/d", "TRADELOOP_CRASH_AT": "mid_fills"})
    assert s == Settings(db=Path("/x/y.duckdb"), lock_timeout=2.5, fill_batch=7, lease_seconds=60.0,
                         data_dir=Path("/d"), crash_at="mid_fills")


def test_empty_variables_mean_the_default():
    assert Settings.from_env({name: "" for name in ("TRADELOOP_DB", "TRADELOOP_LOCK_TIMEOUT", "TRADELOOP_FILL_BATCH",
                                                   "TRADELOOP_LEASE_SECONDS", "TRADELOOP_CRASH_AT")}) == Settings()


@pytest.mark.parametrize("variable, value, message", [
    ("TRADELOOP_LOCK_TIMEOUT", "-1", "TRADELOOP_LOCK_TIMEOUT is '-1'; it must be a number of seconds >= 0"),
    ("TRADELOOP_LOCK_TIMEOUT", "nan", "TRADELOOP_LOCK_TIMEOUT is 'nan'; it must be a number of seconds >= 0"),
    ("TRADELOOP_LEASE_SECONDS", "0", "TRADELOOP_LEASE_SECONDS is '0'; it must be a number of seconds > 0"),
    ("TRADELOOP_LEASE_SECONDS", "1e999", "TRADELOOP_LEASE_SECONDS is '1e999'; it must be a number of seconds > 0"),
    ("TRADELOOP_FILL_BATCH", "0", "TRADELOOP_FILL_BATCH is '0'; it must be a whole number >= 1"),
    ("TRADELOOP_FILL_BATCH", "2.5", "TRADELOOP_FILL_BATCH is '2.5'; it must be a whole number >= 1"),
    ("TRADELOOP_CRASH_AT", "nowhere", "TRADELOOP_CRASH_AT is 'nowhere'; allowed: ['after_freeze', "),
    ("TRADELOOP_SCHEDULER", "udp://x", "TRADELOOP_SCHEDULER: scheduler is 'udp://x'; give 'local' or a Dask"),
    ("TRADELOOP_INTERRUPT_AT", "after_combination:0", "TRADELOOP_INTERRUPT_AT is 'after_combination:0'; give "
                                                      "POINT or POINT:N (N >= 1) with POINT one of ['after_combination'"),
    ("TRADELOOP_INTERRUPT_AT", "somewhere:2", "TRADELOOP_INTERRUPT_AT is 'somewhere:2'; give POINT or POINT:N"),
])
def test_a_bad_value_names_the_variable(variable, value, message):
    with pytest.raises(ValidationError) as info:
        Settings.from_env({variable: value})
    assert str(info.value).startswith(message)


def test_the_library_does_not_read_the_environment(monkeypatch, tmp_path):
    from tradeloop import Store

    monkeypatch.setenv("TRADELOOP_LOCK_TIMEOUT", "soon")
    monkeypatch.setenv("TRADELOOP_DB", str(tmp_path / "elsewhere.duckdb"))
    monkeypatch.chdir(tmp_path)
    with Store() as store:  # neither variable is looked at below the entry points
        assert store.timeout == 30.0 and store.path == Path("tradeloop.duckdb")
    assert not (tmp_path / "elsewhere.duckdb").exists()


@pytest.mark.parametrize("value, expected", [("local", "local"), ("tcp://10.1.2.3:8786", "tcp://10.1.2.3:8786"),
                                             ("", None)])
def test_scheduler_is_read(value, expected):
    assert Settings.from_env({"TRADELOOP_SCHEDULER": value}).scheduler == expected


def test_interrupt_at_is_read():
    assert Settings.from_env({"TRADELOOP_INTERRUPT_AT": "mid_artifact:3"}).interrupt_at == "mid_artifact:3"
    assert Settings.from_env({"TRADELOOP_INTERRUPT_AT": ""}).interrupt_at is None
