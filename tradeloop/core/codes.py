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

    # the integers are stored in simulation_orders.status_code (schema v3): never renumber
    Code(OUTCOME, "filled", 0, "filled", status="FILLED"),
    Code(OUTCOME, "risk", 1, "rejected by risk", status="REJECTED", reason="risk"),
    Code(OUTCOME, "missing_price", 2, "rejected: missing price", status="REJECTED", reason="missing_price"),
    Code(OUTCOME, "canceled", 3, "canceled at the close", status="CANCELED", reason="unfilled_at_close"),

    # the bits are stored in simulation_orders.risk_mask (schema v3): never renumber
    Code(RISK_RULE, "max_order_notional", 0, "order notional", bit=0),
    Code(RISK_RULE, "max_position_ratio", 1, "position weight", bit=1),
    Code(RISK_RULE, "single_name_cap", 2, "position weight", bit=2),
    Code(RISK_RULE, "sector_cap", 3, "sector gross weight", bit=3),
    Code(RISK_RULE, "max_gross_exposure", 4, "gross exposure", bit=4),
    Code(RISK_RULE, "no_short", 5, "short position", bit=5),

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
