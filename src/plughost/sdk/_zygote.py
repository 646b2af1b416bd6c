"""The fork server ("zygote"): Python plugin processes forked from one pre-imported parent.

The host starts this once (``ProcessOptions(fork_server=True)``); it imports what every Python
plugin runner imports, freezes those objects out of the garbage collector's reach (so their
pages stay shared copy-on-write with every child), and then only forks. Its one channel is a
``SOCK_SEQPACKET`` socket pair with the host, inherited at start; nothing else can reach it.

Requests (host -> here), one JSON object per packet:

* ``{"op": "fork", "req": n, "isolate_network": bool}`` with three descriptors — the child's
  stdin, stdout and stderr — answered ``{"op": "forked", "req": n, "pid": p}``;
* ``{"op": "kill", "pid": p, "sig": s}``: signal a child's process group. Only a child of this
  server that has not been reaped is signalled, so a recycled pid is never hit.

Reports (here -> host): ``{"op": "ready", "pid"}`` once, ``{"op": "exited", "pid", "status"}``
for each child (``status`` as ``subprocess``'s ``returncode``).

A forked child keeps nothing of the server: the socket, the wake-up pipe and every descriptor
but its own three are closed before it does anything else; it leads a session of its own, dies
with the server (``PR_SET_PDEATHSIG``), and leaves the network namespace when asked. It then
is a warm spare (``$/spare``, then :func:`plughost.sdk.child.run_assigned`): it takes the
plugin's environment, limits and confinement (Landlock, seccomp) from ``$/assign`` before
importing plugin code, and the host moves it into the plugin's cgroup before sending that.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys

from plughost.core.wire import ENV_ZYGOTE, EXIT_PROTOCOL, dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main"]


def _send(ctl: socket.socket, msg: dict[str, Any]) -> None:
    ctl.send(dumps(msg))


def _reap(ctl: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(ctl, {"op": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})


def _child(ctl: socket.socket, fds: list[int], preexec: Any) -> None:
    """In the forked child: shed the server, take the three descriptors, become a spare."""
    code = EXIT_PROTOCOL
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ctl.detach()  # closed below with the rest; the object must not close a reused number
        os.setsid()
        preexec()  # die with the server; own network namespace when asked
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 1 << 20)  # the socket, the wake-up pipe, the received originals
        from plughost.core.wire import M
        from plughost.sdk.child import _protocol_fds, run_assigned

        conn = _protocol_fds()
        conn.notify(M.SPARE)  # ready, as a warm spare says it
        code = run_assigned(conn)
    except BaseException as exc:  # say why on stderr; never return into the server's loop
        with contextlib.suppress(Exception):
            os.write(2, f"plughost fork server child: {type(exc).__name__}: {exc}\n".encode())
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def main() -> int:
    """Run the fork server until the host closes its end of the socket."""
    ctl = socket.socket(fileno=int(os.environ.pop(ENV_ZYGOTE)))
    from plughost.runtimes.process.launch import make_preexec
    from plughost.sdk.child import _preload

    _preload()
    gc.collect()
    gc.freeze()  # what is loaded now stays shared: the collector never writes to those pages
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    _send(ctl, {"op": "ready", "pid": os.getpid()})
    while True:
        for fd, _ in poller.poll():
            if fd == wake_r:
                with contextlib.suppress(Exception):
                    while os.read(wake_r, 512):
                        pass
                _reap(ctl, children)
                continue
            data, fds, _, _ = socket.recv_fds(ctl, 65536, 3)
            if not data:  # the host closed its end: its plugins go with this process
                return 0
            msg = loads(data)
            op = msg.get("op") if type(msg) is dict else None
            if op == "fork" and len(fds) == 3:
                preexec = make_preexec({}, isolate_network=bool(msg.get("isolate_network")))
                pid = os.fork()
                if pid == 0:
                    _child(ctl, fds, preexec)
                children.add(pid)
                _send(ctl, {"op": "forked", "req": msg.get("req"), "pid": pid})
            elif op == "kill" and msg.get("pid") in children:
                with contextlib.suppress(Exception):
                    os.killpg(int(msg["pid"]), int(msg["sig"]))
            elif op == "fork":
                _send(ctl, {"op": "error", "req": msg.get("req"),
                            "message": f"fork needs 3 descriptors, got {len(fds)}"})
            for fd_ in fds:
                os.close(fd_)
