"""The gRPC launch handshake, in the style of HashiCorp go-plugin (stdlib only).

The host starts the plugin with ``PLUGHOST_GRPC_MAGIC_COOKIE`` set (a plugin started by hand
sees it missing and says it is meant to be started by a host), ``PLUGHOST_GRPC_SOCKET_DIR`` (a
private directory for its Unix socket) and ``PLUGHOST_GRPC_PROTOCOL_VERSIONS`` (the app protocol
versions the host speaks). The plugin starts its gRPC server and prints **one line** on stdout::

    1|1|unix|/tmp/plughost-grpc-x/plugin.sock|grpc
    <core-protocol-version>|<app-protocol-version>|<network>|<address>|grpc

``network`` is ``unix`` (the default) or ``tcp`` (``127.0.0.1:port``); with mutual TLS a sixth
field carries the plugin's server certificate (:mod:`.tls`). The host waits for it up
to a timeout and refuses a version it does not speak with an error naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from plughost.errors import ProtocolError

__all__ = [
    "APP_PROTOCOL_VERSION",
    "CORE_PROTOCOL_VERSION",
    "ENV_COOKIE",
    "ENV_SOCKET_DIR",
    "ENV_VERSIONS",
    "MAGIC_COOKIE",
    "Handshake",
    "parse_line",
]

CORE_PROTOCOL_VERSION: Final = 1
APP_PROTOCOL_VERSION: Final = 1
ENV_COOKIE: Final = "PLUGHOST_GRPC_MAGIC_COOKIE"
MAGIC_COOKIE: Final = "d6f3c1a0-plughost-grpc-plugin"
ENV_SOCKET_DIR: Final = "PLUGHOST_GRPC_SOCKET_DIR"
ENV_VERSIONS: Final = "PLUGHOST_GRPC_PROTOCOL_VERSIONS"


@dataclass(frozen=True, slots=True)
class Handshake:
    core: int
    app: int
    network: str
    address: str

    @property
    def target(self) -> str:
        """The gRPC target to dial."""
        return f"unix:{self.address}" if self.network == "unix" else self.address


def parse_line(line: str, plugin_id: str) -> Handshake:
    """Parse the plugin's handshake line; refuse anything else with a clear message."""
    parts = line.strip().split("|")
    example = f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|/path/to/plugin.sock|grpc"
    if len(parts) not in (4, 5, 6) or not all(parts[:4]):
        raise ProtocolError(
            f"the plugin's first line on stdout is not a handshake: {line.strip()[:200]!r}; "
            f"print exactly one line like {example!r} once the server listens (docs/grpc.md)",
            code="protocol.handshake", plugin_id=plugin_id)
    try:
        core, app = int(parts[0]), int(parts[1])
    except ValueError:
        raise ProtocolError(f"handshake versions are not numbers: {line.strip()[:200]!r}",
                            code="protocol.handshake", plugin_id=plugin_id) from None
    if core != CORE_PROTOCOL_VERSION or app != APP_PROTOCOL_VERSION:
        raise ProtocolError(
            f"the plugin speaks core protocol {core} / app protocol {app}; this host speaks core "
            f"protocol {CORE_PROTOCOL_VERSION} / app protocol {APP_PROTOCOL_VERSION}. Rebuild "
            "the plugin against this host's plughost.proto.",
            code="protocol.version", plugin_id=plugin_id)
    network, address = parts[2], parts[3]
    if network not in ("unix", "tcp") or (len(parts) >= 5 and parts[4] != "grpc"):
        raise ProtocolError(f"handshake network must be unix or tcp and protocol grpc: "
                            f"{line.strip()[:200]!r}", code="protocol.handshake",
                            plugin_id=plugin_id)
    return Handshake(core, app, network, address)
