"""Which Jupyter kernel runs tradeloop's notebooks, and how it is launched.

:func:`resolve_kernel` picks the kernel: the one asked for, else ``tradeloop``; when no ``tradeloop`` kernel is
installed it installs one for the running interpreter into ``sys.prefix`` (what the README's set-up does by hand),
and when that folder is not writable it falls back to Jupyter's built-in spec for the running interpreter.

:func:`kernel_manager_class` launches kernels over local IPC sockets in a private temporary folder instead of TCP
ports on localhost: nothing listens on the network, so ipykernel has no reason to print its "Kernel is running over
TCP without encryption" warning into every batch, papermill run and artifact re-run. Other kernel messages and
errors are untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

__all__ = ["DEFAULT_KERNEL", "resolve_kernel", "kernel_manager_class"]

#: The kernel the README's set-up installs and the notebooks' metadata names.
DEFAULT_KERNEL = "tradeloop"
_DISPLAY_NAME = "Python (tradeloop)"


def _interpreter(name: str) -> str | None:
    """The program kernel ``name`` starts (None: not installed); a bare ``python`` is this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        return None
    program = argv[0] if argv else "?"
    return sys.executable if program in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}") else program


def resolve_kernel(name: str | None) -> tuple[str, str]:
    """``(kernel name, which Python it runs and how it was found)`` for ``name`` (None: ``tradeloop``, installed
    into ``sys.prefix`` on first use).

    A named kernel that is not installed is a one-line :class:`~tradeloop.errors.TradeloopError`."""
    from ..errors import TradeloopError

    if name is not None:
        program = _interpreter(name)
        if program is None:
            raise TradeloopError(
                f"Jupyter kernel {name!r} is not installed; install it with: python -m ipykernel install "
                f"--sys-prefix --name {name} (or leave out --kernel to use this Python)")
        return name, program
    program = _interpreter(DEFAULT_KERNEL)
    if program is not None:
        return DEFAULT_KERNEL, program
    from ipykernel.kernelspec import install

    try:
        path = install(kernel_name=DEFAULT_KERNEL, display_name=_DISPLAY_NAME, prefix=sys.prefix)
    except OSError:  # a read-only environment: Jupyter's own spec for this interpreter needs no files
        return "python3", f"{sys.executable}; {sys.prefix} is not writable, so no kernel was installed"
    return DEFAULT_KERNEL, f"{sys.executable}; installed now into {path}"


def kernel_manager_class():
    """The kernel manager class papermill should use: IPC transport in a private folder (POSIX), else Jupyter's."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name == "nt":  # no IPC transport on Windows
        return AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        """An :class:`AsyncKernelManager` whose kernel listens on IPC sockets in its own temporary folder."""

        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)
            self._ipc_dir = tempfile.mkdtemp(prefix="tl-kernel-")
            self.ip = os.path.join(self._ipc_dir, "k")

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

    return IpcKernelManager
