"""A simulation partitioned by portfolio: each portfolio's whole history is one task, the results one simulation.

Portfolios never interact in a simulation (each sizes, checks and executes against its own value and cash), but
dates do (holdings carry forward), so the history is split along portfolios only, never along time. The inputs are
validated once here (:func:`~tradeloop.workflows.history.prepare_history`); each task runs the date loop of one
portfolio (:func:`simulate_portfolio`) and returns its arrays; :func:`simulate_partitioned` interleaves them back
into the order the single-process loop produces, so the :class:`Simulation` (its id, orders, fills, summary and
stored rows) is the same as :func:`~tradeloop.workflows.history.simulate`'s. ``simulate(..., scheduler=...)`` (or
``workers=N``) comes here when the weights hold several portfolios.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.validate import check_model_version
from .executors import check_scheduler, open_pool
from .history import HistoryInputs, _rules, _run_dates, ledger_replay, prepare_history
from .params import RunParams
from .simulation import Simulation

__all__ = ["simulate_partitioned", "partitioned_simulation", "run_partitioned", "simulate_portfolio",
           "portfolio_inputs"]


def portfolio_inputs(h: HistoryInputs, p: int) -> HistoryInputs:
    """Portfolio ``p``'s share of validated inputs: its weight rows and starting state, the same prices and
    symbol universe (so slot ``s`` here is slot ``p * S + s`` of the whole)."""
    S = h.S
    mine = (h.wpos // S) == p
    wd = h.wd[mine]
    return dataclasses.replace(
        h, portfolios=h.portfolios[p:p + 1], wd=wd, wpos=h.wpos[mine] % S, wvalue=h.wvalue[mine],
        wbounds=np.searchsorted(wd, np.arange(len(h.dates) + 1)), hold0=h.hold0[p * S:(p + 1) * S],
        pv0=h.pv0[p:p + 1], cash0=None if h.cash0 is None else h.cash0[p:p + 1])


def simulate_portfolio(h: HistoryInputs, params: RunParams) -> dict:
    """One task: the date loop over one portfolio's inputs; returns its order, fill and per-date arrays.

    Every order keeps its weight, price, lot and sector (they are not read back from dense inputs, which belong to
    the whole), and per-date totals are summed per portfolio as the multi-portfolio loop sums them.
    """
    rules = dataclasses.replace(_rules(h, params), recover=False)
    return _run_dates(h, rules, progress=False)


def _interleave(parts: list[dict], S: int, D: int) -> tuple[dict, dict | None, dict]:
    """The portfolios' arrays in the whole loop's order: by date, then portfolio, then symbol."""
    P = len(parts)
    t = np.concatenate([part["orders"]["t"] for part in parts])
    port = np.concatenate([np.full(len(part["orders"]["t"]), p, dtype=np.int64) for p, part in enumerate(parts)])
    order = np.lexsort((port, t))  # stable within (date, portfolio): symbol order kept
    orders = {}
    for key in parts[0]["orders"]:
        column = np.concatenate([part["orders"][key] for part in parts])
        if key == "pos":
            column = (port * S + column).astype(column.dtype)
        orders[key] = column[order]
    fills = None
    if parts[0]["fills"] is not None:
        where = np.empty(len(order), dtype=np.int64)
        where[order] = np.arange(len(order))  # a portfolio's order row -> its row in the whole
        offsets = np.cumsum([0] + [len(part["orders"]["t"]) for part in parts])
        raw = {k: np.concatenate([part["fills"][k] for part in parts]) for k in parts[0]["fills"]}
        raw["order"] = where[np.concatenate([part["fills"]["order"] + offsets[p] for p, part in enumerate(parts)])]
        by = np.lexsort((raw["order"], raw["seq"], orders["t"][raw["order"]]))  # date, step, order: as appended
        fills = {k: v[by] for k, v in raw.items()}
    day = {k: np.hstack([part["day"][k] for part in parts]) for k in parts[0]["day"]}
    return orders, fills, day


def _slot_rows(parts: list[dict], S: int, name: str) -> dict:
    """The portfolios' rows kept per (date, slot) (``decisions``, ``sizing``) as the whole loop's: slots
    portfolio-major; their order is the reader's."""
    out = {}
    for key in parts[0][name]:
        columns = [part[name][key] for part in parts]
        if key == "pos":
            columns = [(p * S + c).astype(c.dtype) for p, c in enumerate(columns)]
        out[key] = np.concatenate(columns)
    return out


def simulate_partitioned(weights, prices, *, portfolio_value, params: RunParams | None = None, positions=None,
                         cash=None, model_version: str = "sim", scheduler: str | None = None,
                         workers: int | None = None) -> Simulation:
    """:func:`~tradeloop.workflows.history.simulate`, one task per portfolio (see the module docstring).

    ``scheduler`` / ``workers`` as in :func:`tradeloop.workflows.executors.open_pool`. The result equals
    ``simulate(...)`` with the same inputs, to the last bit.
    """
    return partitioned_simulation(weights, prices, portfolio_value=portfolio_value, params=params,
                                  positions=positions, cash=cash, model_version=model_version, scheduler=scheduler,
                                  workers=workers)[0]


def partitioned_simulation(weights, prices, *, portfolio_value, params: RunParams | None = None, positions=None,
                           cash=None, model_version: str = "sim", scheduler: str | None = None,
                           workers: int | None = None) -> tuple[Simulation, str]:
    """:func:`simulate_partitioned` and where its tasks ran (for summaries)."""
    params = params or RunParams()
    check_model_version(model_version)
    check_scheduler(scheduler, workers, available=scheduler is not None)
    h = prepare_history(weights, prices, portfolio_value=portfolio_value, params=params, positions=positions, cash=cash)
    return run_partitioned(h, params, model_version=model_version, scheduler=scheduler, workers=workers)


def run_partitioned(h: HistoryInputs, params: RunParams, *, model_version: str, simulation_id: str | None = None,
                    scheduler: str | None = None, workers: int | None = None) -> tuple[Simulation, str]:
    """The date loop over inputs :func:`~tradeloop.workflows.history.prepare_history` checked, one task per
    portfolio; the simulation and where its tasks ran."""
    with open_pool(scheduler, workers) as pool:
        futures = [pool.submit(simulate_portfolio, portfolio_inputs(h, p), params) for p in range(h.P)]
        parts = [None] * h.P
        for i, future in pool.results(futures):
            parts[i] = future.result()
        where = pool.describe
    orders, fills, day = _interleave(parts, h.S, len(h.dates))
    sim = Simulation(
        dates=h.dates, universe=h.universe, portfolios=h.portfolios, named_portfolios=h.named, sectors=h.sectors,
        params=params, model_version=model_version, portfolio_value=h.pv0, initial_cash=h.cash0,
        initial_positions=h.hold0, orders_raw=orders, day_pv=day["pv"], day_cash_before=day["cash_before"],
        day_cash_after=day["cash_after"], day_holdings=(day["gross"], day["net"], day["npos"]),
        given_id=simulation_id, fills_raw=fills, _digest_parts=h.digest_parts(),
        _ledger_replay=ledger_replay(h, _slot_rows(parts, h.S, "sizing")),
        decisions_raw=_slot_rows(parts, h.S, "decisions"), day_borrow=day["borrow"],
        _inputs={"recover": False, "wvalue": h.wvalue, "pbounds": h.pbounds, "psym": h.psym, "pprice": h.pprice,
                 "plot": h.plot, "psec": h.psec})
    return sim, where
