"""Where a workflow's tasks execute: one seam for ``batch``, ``simulate`` and ``sweep``.

:func:`open_pool` gives a :class:`Pool` whose ``submit`` returns :class:`concurrent.futures.Future` objects:

=========================  ==========================================================================================
``scheduler``              tasks run in
=========================  ==========================================================================================
``None``                   this machine: the calling process when ``workers`` is 1, else ``workers`` local processes
                           (threads for tasks that only wait on a subprocess, e.g. a papermill kernel)
``"local"``                a :class:`distributed.LocalCluster` of ``workers`` processes, started and stopped here
``"tcp://host:port"``      an existing Dask cluster (its scheduler's address); its workers are its own
=========================  ==========================================================================================

Tasks are plain functions of plain data that return plain data (numbers, Arrow tables, bytes): a task never opens
the target database, so the calling process stays its only writer, whatever runs the tasks. ``distributed`` is
imported only when a scheduler is given.
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import ValidationError

__all__ = ["Pool", "open_pool", "check_scheduler", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'tradeloop[dask]' (or: pip install distributed)"
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/:]+(:\d{1,5})?/?$")


def check_scheduler(scheduler: str | None, workers: int | None = None, *, available: bool = False) -> str | None:
    """A valid scheduler (``None``, ``"local"`` or a Dask address) or a one-line :class:`ValidationError`;
    ``available``: also refuse a scheduler when ``distributed`` is not installed (before anything is written)."""
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValidationError(f"workers is {workers!r}; it must be a whole number >= 1")
    if scheduler is None or scheduler == "":
        return None
    if not isinstance(scheduler, str) or not (scheduler == "local" or _ADDRESS.match(scheduler)):
        raise ValidationError(f"scheduler is {scheduler!r}; give 'local' or a Dask scheduler address such as "
                              "tcp://127.0.0.1:8786")
    if workers is not None and scheduler != "local":
        raise ValidationError(f"workers applies to local processes and --scheduler local; the cluster at "
                              f"{scheduler} has its own workers")
    if available:
        _distributed()
    return scheduler


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ValidationError(f"--scheduler needs Dask distributed, which is not installed; install it with: "
                              f"{INSTALL_HINT}") from None
    return distributed


class _Inline:
    """Runs each task when its future is first asked for, in the calling process (``workers=1``)."""

    def submit(self, fn: Callable, *args) -> Future:
        return _LazyFuture(fn, args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class _LazyFuture(Future):
    def __init__(self, fn, args):
        super().__init__()
        self._call = (fn, args)

    def run(self) -> None:
        if self.done():
            return
        fn, args = self._call
        try:
            self.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - a KeyboardInterrupt stops the driver, below
            if not isinstance(e, Exception):
                raise
            self.set_exception(e)


def _keep(obj):
    return obj


@dataclass
class Pool:
    """Executes tasks somewhere (see the module docstring); ``describe`` says where, for summaries."""

    executor: Any
    describe: str
    workers: int
    client: Any = None
    _futures: list = field(default_factory=list)

    def share(self, obj):
        """A handle on ``obj`` to pass to many tasks: on Dask, a task holding it (sent to the scheduler once, and
        recomputed there if the worker keeping it dies, which a scattered object would not survive); else ``obj``."""
        if self.client is None:
            return obj
        return self.client.submit(_keep, obj, pure=False)

    def submit(self, fn: Callable, *args) -> Future:
        future = self.executor.submit(fn, *args)
        self._futures.append(future)
        return future

    def results(self, futures: list[Future]) -> Iterator[tuple[int, Future]]:
        """``(index, future)`` as each future finishes (in order for the inline pool)."""
        if isinstance(self.executor, _Inline):
            for i, f in enumerate(futures):
                f.run()
                yield i, f
            return
        from concurrent.futures import as_completed

        index = {id(f): i for i, f in enumerate(futures)}
        for f in as_completed(futures):
            yield index[id(f)], f


@contextmanager
def open_pool(scheduler: str | None = None, workers: int | None = None, *, threads: bool = False) -> Iterator[Pool]:
    """Open the pool ``scheduler`` names (see the module docstring); closed (a local cluster stopped) on exit.

    ``threads``: without a scheduler, run tasks in threads instead of processes (for tasks that wait on a
    subprocess). Unfinished tasks are cancelled when the block exits early (an error, Ctrl-C).
    """
    scheduler = check_scheduler(scheduler, workers)
    if scheduler is None:
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor  # on use: multiprocessing is not free

        n = workers or 1
        if n == 1 and not threads:
            executor, where = _Inline(), "this process"
        elif threads:
            executor, where = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tradeloop"), f"{n} thread(s)"
        else:
            executor, where = ProcessPoolExecutor(max_workers=n), f"{n} local process(es)"
        pool = Pool(executor, where, n)
        try:
            yield pool
        finally:
            for f in pool._futures:
                f.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
        return
    distributed = _distributed()
    cluster = None
    if scheduler == "local":
        n = workers or 2
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=50)
        client = distributed.Client(cluster, set_as_default=False)
        where = f"Dask LocalCluster of {n} worker(s)"
    else:
        try:
            client = distributed.Client(scheduler, set_as_default=False, timeout=30)
        except OSError as e:
            raise ValidationError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        n = max(1, len(client.nthreads()))
        where = f"Dask cluster {scheduler} ({n} worker(s))"
    pool = Pool(client.get_executor(pure=False), where, n, client=client)
    try:
        yield pool
    finally:
        for f in pool._futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
