"""A minimal plugin: activation logs, ``greet`` answers."""

from plughost.sdk import Plugin, PluginContext


class HelloPlugin(Plugin):
    def activate(self, ctx: PluginContext) -> None:
        self.greeting = ctx.config.get("greeting", "Hello")
        ctx.logger.info("hello plugin active")

    def greet(self, name: str = "world") -> str:
        return f"{self.greeting}, {name}!"

    def deactivate(self) -> None:
        self.ctx.logger.info("hello plugin deactivated")
