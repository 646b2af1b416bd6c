"""The leanest Python process plugin: a plain class, no imports (bench spawn-to-ready)."""


class Lean:
    def activate(self, ctx):
        self.ctx = ctx

    def echo(self, x=None):
        return x
