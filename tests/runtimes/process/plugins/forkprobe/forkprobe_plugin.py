"""Looks at its own process from the inside: environment, descriptors, parent, memory."""

from __future__ import annotations

import os

from plughost.sdk import Plugin


class Probe(Plugin):
    def activate(self, ctx):
        self.ctx = ctx

    def env(self) -> dict:
        return dict(os.environ)

    def fds(self) -> dict:
        out = {}
        for name in os.listdir("/proc/self/fd"):
            try:
                out[name] = os.readlink(f"/proc/self/fd/{name}")
            except OSError as exc:
                out[name] = type(exc).__name__
        return out

    def signal_parent(self) -> str:
        try:
            os.kill(os.getppid(), 0)
        except OSError as exc:
            return type(exc).__name__
        return "delivered"

    def parent_fds(self) -> str:
        try:
            return str(os.listdir(f"/proc/{os.getppid()}/fd"))
        except OSError as exc:
            return type(exc).__name__

    def crash(self) -> None:
        os._exit(9)
