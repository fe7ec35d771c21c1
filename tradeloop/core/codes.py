"""The one table of domain codes: run and order statuses, order outcomes, reject reasons and risk rules.

Every other spelling of a code is derived from these rows: the state machines (:mod:`tradeloop.core.fsm`), the
risk rule order and bits (:mod:`tradeloop.core.risk`), the integer codes a simulation stores, the SQL views that
decode them (:mod:`tradeloop.store`) and the labels reports print. Adding a risk rule or a reject reason is one row
here plus its kernel; ``tests/core/test_codes.py`` fails when a derived table disagrees with this one.

Columns of a row (:class:`Code`): ``kind`` (which table), ``name`` (the text stored and printed), ``code`` (the
integer stored where text would cost too much; stable once released: never renumber a row), ``bit`` (risk rules:
the bit in a ``risk_mask``), ``label`` (for people), ``terminal`` (statuses: never left once reached).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Code", "CODES", "RUN_STATUS", "ORDER_STATUS", "OUTCOME", "REJECT_REASON", "RISK_RULE", "names", "rows",
    "code_of", "risk_rule_names", "risk_mask_names", "RISK_PREFIX", "SHORTFALL_CAUSE", "shortfall_cause_names",
    "ACTION", "default_action", "allowed_actions",
]

RUN_STATUS = "run_status"
ORDER_STATUS = "order_status"
#: How a simulated order ended: a status and, unless FILLED, the reason (the integer ``status_code`` stored).
OUTCOME = "outcome"
REJECT_REASON = "reject_reason"
RISK_RULE = "risk_rule"
#: Why the implemented portfolio differs from the paper one (:mod:`tradeloop.core.shortfall`); the row ``risk``
#: stands for one cause ``risk:<rule>`` per risk rule row, so a rule added later is a cause by name.
SHORTFALL_CAUSE = "shortfall_cause"
#: What a breach of a risk rule does (``risk.on_breach``): block the rebalance, reject the order, resize it, skip it.
ACTION = "action"
#: A risk rejection's reason text is ``risk:`` + its ``;``-joined rule names.
RISK_PREFIX = "risk:"


@dataclass(frozen=True)
class Code:
    """One row of the table of codes."""

    kind: str
    name: str
    code: int
    label: str
    terminal: bool = False
    bit: int | None = None
    #: outcomes only: the order status and reject reason this outcome stands for
    status: str | None = None
    reason: str | None = None
    #: risk rules only: the actions ``risk.on_breach`` may choose and the default one; ``sim_default`` is the
    #: default in a simulation when it differs from a run's (the six original rules: a run blocks, a simulation
    #: rejects the breaching orders, so a ten-year history is not frozen by one breach)
    actions: tuple[str, ...] = ()
    default: str | None = None
    sim_default: str | None = None


_HARD_RESIZE = {"actions": ("block", "reject", "resize"), "default": "block", "sim_default": "reject"}
_HARD = {"actions": ("block", "reject"), "default": "block", "sim_default": "reject"}
_SKIP = {"actions": ("skip",), "default": "skip"}

CODES: tuple[Code, ...] = (
    Code(RUN_STATUS, "queued", 0, "queued, not started"),
    Code(RUN_STATUS, "running", 1, "running"),
    Code(RUN_STATUS, "done", 2, "done", terminal=True),
    # not terminal: a failed run may be re-run to completion
    Code(RUN_STATUS, "failed", 3, "failed (may be re-run)"),
    Code(RUN_STATUS, "blocked", 4, "blocked by risk", terminal=True),

    Code(ORDER_STATUS, "NEW", 0, "new"),
    Code(ORDER_STATUS, "SUBMITTED", 1, "submitted"),
    Code(ORDER_STATUS, "PARTIAL", 2, "partially filled"),
    Code(ORDER_STATUS, "FILLED", 3, "filled", terminal=True),
    Code(ORDER_STATUS, "CANCELED", 4, "canceled", terminal=True),
    Code(ORDER_STATUS, "REJECTED", 5, "rejected", terminal=True),

    Code(REJECT_REASON, "missing_price", 0, "no price to size or fill the order"),
    Code(REJECT_REASON, "unfilled_at_close", 1, "still open at the close of its time in force"),
    Code(REJECT_REASON, "risk", 2, "blocked by a risk rule (reason text: risk:<rules>)"),
    Code(REJECT_REASON, "blocked", 3, "not sent: a risk rule with on_breach 'block' blocked its whole rebalance"),

    # the integers are stored in simulation_orders.status_code (schema v3): never renumber
    Code(OUTCOME, "filled", 0, "filled", status="FILLED"),
    Code(OUTCOME, "risk", 1, "rejected by risk", status="REJECTED", reason="risk"),
    Code(OUTCOME, "missing_price", 2, "rejected: missing price", status="REJECTED", reason="missing_price"),
    Code(OUTCOME, "canceled", 3, "canceled at the close", status="CANCELED", reason="unfilled_at_close"),
    Code(OUTCOME, "blocked", 4, "not sent: the date was blocked by risk", status="REJECTED", reason="blocked"),

    # the codes are stored in risk_decisions.action as text; the integers are the arrays' codes
    Code(ACTION, "block", 0, "the whole rebalance is blocked (a run ends blocked; a simulation date sends nothing)"),
    Code(ACTION, "reject", 1, "the breaching order is REJECTED with risk:<rule>; the rest proceed"),
    Code(ACTION, "resize", 2, "the order is cut to the largest lot multiple that satisfies the rule"),
    Code(ACTION, "skip", 3, "the order is not sent (dust, no-trade band); never blocks the rebalance"),

    # the bits are stored in simulation_orders.risk_mask (schema v3; USMALLINT since v8): never renumber
    Code(RISK_RULE, "max_order_notional", 0, "order notional", bit=0, **_HARD_RESIZE),
    Code(RISK_RULE, "max_position_ratio", 1, "position weight", bit=1, **_HARD_RESIZE),
    Code(RISK_RULE, "single_name_cap", 2, "position weight", bit=2, **_HARD_RESIZE),
    Code(RISK_RULE, "sector_cap", 3, "sector gross weight", bit=3, **_HARD),
    Code(RISK_RULE, "max_gross_exposure", 4, "gross exposure", bit=4, **_HARD),
    Code(RISK_RULE, "no_short", 5, "short position", bit=5, **_HARD_RESIZE),
    # rebalancing controls: the same default on both paths
    Code(RISK_RULE, "min_order_notional", 6, "order notional below the minimum", bit=6, **_SKIP),
    Code(RISK_RULE, "min_order_qty", 7, "order quantity below the minimum", bit=7, **_SKIP),
    Code(RISK_RULE, "no_trade_band", 8, "weight drift inside the band", bit=8, **_SKIP),
    Code(RISK_RULE, "no_trade_band_relative", 9, "relative weight drift inside the band", bit=9, **_SKIP),
    Code(RISK_RULE, "max_turnover", 10, "turnover", bit=10, actions=("resize", "block"), default="resize"),
    Code(RISK_RULE, "restricted", 11, "restricted symbol", bit=11, actions=("reject", "block"), default="reject"),
    Code(RISK_RULE, "max_adv_participation", 12, "share of ADV", bit=12, actions=("resize", "reject", "block"),
         default="resize"),
    Code(RISK_RULE, "max_orders", 13, "orders per rebalance", bit=13, actions=("reject", "block"), default="reject"),

    # in the order an order's quantity meets them; names are stored (simulation_shortfall), not these integers
    Code(SHORTFALL_CAUSE, "rounding", 0, "paper quantity floored to whole lots"),
    Code(SHORTFALL_CAUSE, "cash_trim", 1, "buys trimmed to the cash left after the buffer"),
    Code(SHORTFALL_CAUSE, "risk", 2, "blocked or resized by a risk rule (one cause risk:<rule> per rule)"),
    Code(SHORTFALL_CAUSE, "missing_price", 3, "no price: not sized, rejected"),
    Code(SHORTFALL_CAUSE, "liquidity", 4, "unfilled at the close: volume cap, or filled in part"),
    Code(SHORTFALL_CAUSE, "limit_not_crossed", 5, "unfilled at the close: the limit price was not reached"),
    Code(SHORTFALL_CAUSE, "not_executed", 6, "never worked to its end (blocked run, dry run, failed run)"),
)


def rows(kind: str) -> tuple[Code, ...]:
    """The rows of one kind, in code order."""
    return tuple(sorted((c for c in CODES if c.kind == kind), key=lambda c: c.code))


def names(kind: str) -> tuple[str, ...]:
    """The names of one kind, in code order."""
    return tuple(c.name for c in rows(kind))


def code_of(kind: str, name: str) -> int:
    """The integer code of ``name`` in ``kind``; KeyError names both when there is none."""
    for c in CODES:
        if c.kind == kind and c.name == name:
            return c.code
    raise KeyError(f"no {kind} named {name!r}")


def risk_rule_names() -> tuple[str, ...]:
    """Risk rules in bit order (the order their checks run and their codes are joined)."""
    return tuple(c.name for c in sorted(rows(RISK_RULE), key=lambda c: c.bit))


def risk_mask_names() -> tuple[str, ...]:
    """``;``-joined rule names for every risk mask value (0 .. 2**rules - 1): the decode table of ``risk_mask``."""
    rules = rows(RISK_RULE)
    return tuple(";".join(c.name for c in rules if m >> c.bit & 1) for m in range(1 << len(rules)))


def shortfall_cause_names() -> tuple[str, ...]:
    """Shortfall causes in order: the ``shortfall_cause`` rows, the ``risk`` row expanded to ``risk:<rule>`` for
    every risk rule in bit order."""
    out: list[str] = []
    for c in rows(SHORTFALL_CAUSE):
        out += [RISK_PREFIX + r for r in risk_rule_names()] if c.name == "risk" else [c.name]
    return tuple(out)


def _rule(name: str) -> Code:
    for c in CODES:
        if c.kind == RISK_RULE and c.name == name:
            return c
    raise KeyError(f"no {RISK_RULE} named {name!r}")


def allowed_actions(rule: str) -> tuple[str, ...]:
    """The actions ``risk.on_breach`` may choose for ``rule``."""
    return _rule(rule).actions


def default_action(rule: str, simulation: bool = False) -> str:
    """What a breach of ``rule`` does when ``risk.on_breach`` does not say: its row's default (``sim_default`` in a
    simulation where the row has one)."""
    row = _rule(rule)
    return row.sim_default if simulation and row.sim_default else row.default
