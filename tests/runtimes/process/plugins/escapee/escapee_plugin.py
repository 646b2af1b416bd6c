"""A plugin that tries to leave its confinement: the process-confinement tests drive it."""

from __future__ import annotations

import os
import subprocess
import threading

from plughost.sdk import Plugin
from plughost.sdk.decorators import command


class Escapee(Plugin):
    def activate(self, ctx):
        self.children: list[subprocess.Popen] = []

    @command("escapee.spawn")
    def spawn(self, argv: list[str], detach: bool = False) -> dict:
        """Start ``argv``; ``detach`` double-forks it into a new session (a daemon)."""
        try:
            if detach:
                child = subprocess.Popen(
                    ["/bin/sh", "-c", 'setsid "$@" </dev/null >/dev/null 2>&1 & echo $!', "sh",
                     *argv],
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                )
                out, _ = child.communicate()
                return {"ok": True, "pid": int(out)}
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            self.children.append(proc)
            return {"ok": True, "pid": proc.pid}
        except OSError as exc:
            return {"ok": False, "errno": exc.errno, "error": str(exc)}

    @command("escapee.fork_many")
    def fork_many(self, n: int) -> dict:
        """Fork up to ``n`` sleeping children; say how many the kernel allowed."""
        started = 0
        error = None
        for _ in range(n):
            try:
                pid = os.fork()
            except OSError as exc:
                error = exc.errno
                break
            if pid == 0:
                import time

                time.sleep(60)
                os._exit(0)
            started += 1
        return {"started": started, "errno": error}

    @command("escapee.threads")
    def threads(self, n: int) -> int:
        done = []
        ts = [threading.Thread(target=done.append, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return len(done)

    @command("escapee.read")
    def read(self, path: str) -> dict:
        try:
            with open(path, "rb") as f:
                return {"ok": True, "size": len(f.read())}
        except OSError as exc:
            return {"ok": False, "errno": exc.errno, "error": str(exc)}

    @command("escapee.write")
    def write(self, path: str, text: str = "x") -> dict:
        try:
            with open(path, "w") as f:
                f.write(text)
            return {"ok": True}
        except OSError as exc:
            return {"ok": False, "errno": exc.errno, "error": str(exc)}

    @command("escapee.exit")
    def exit(self, code: int = 0) -> None:
        os._exit(code)
