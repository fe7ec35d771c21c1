"""The errors tradeloop raises: one base class, a few specific kinds with messages that name the bad field."""

__all__ = [
    "TradeloopError",
    "ValidationError",
    "IllegalTransition",
    "ProviderUnavailable",
    "PluginError",
    "RunNotFound",
    "RunConflict",
    "StoreBusy",
    "NotATradeloopDatabase",
]


class TradeloopError(Exception):
    """Base class of every error tradeloop raises on purpose."""


class ValidationError(TradeloopError, ValueError):
    """Input data or parameters are malformed; the message names the field, the row and what is allowed."""


class IllegalTransition(TradeloopError):
    """A run or order was asked to move between two states the state machine does not connect."""


class ProviderUnavailable(TradeloopError):
    """The execution provider cannot execute (not implemented in this phase, or not reachable)."""


class PluginError(ValidationError):
    """A registered plug-in (provider or fill model) cannot be loaded or does not satisfy its contract; the message
    names the entry point and what is missing. A ValidationError: the CLI exits 2, as for an unknown name."""


class RunNotFound(TradeloopError, LookupError):
    """No run with that id exists in the store."""


class RunConflict(ValidationError):
    """A run id is stored already with different inputs (an idempotency key reused for other content)."""


class StoreBusy(TradeloopError):
    """Another process holds the database and did not release it within the timeout."""


class NotATradeloopDatabase(ValidationError):
    """The database path names a file tradeloop did not create: not a DuckDB file, an empty DuckDB file, or another
    application's database. Nothing is written to it. A ValidationError: the CLI exits 2."""
