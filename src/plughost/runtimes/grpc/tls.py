"""Per-launch mutual TLS for gRPC plugins, as HashiCorp go-plugin's AutoMTLS.

For each launch the host makes a fresh key and self-signed certificate and passes the
certificate (PEM) to the plugin in ``PLUGHOST_GRPC_CLIENT_CERT``. The plugin makes its own key
and self-signed server certificate, trusts only the host's certificate for client
authentication, and appends its certificate (base64 DER, as go-plugin) as a sixth field of the
handshake line. The host then trusts only that certificate. Nothing is written to disk, and a
certificate is worth nothing after its launch.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Final

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plughost.errors import ProtocolError

__all__ = ["ENV_CLIENT_CERT", "SERVER_NAME", "AutoTLS", "Identity", "make_identity"]

ENV_CLIENT_CERT: Final = "PLUGHOST_GRPC_CLIENT_CERT"
SERVER_NAME: Final = "localhost"
"""The name in every per-launch certificate (go-plugin uses ``localhost`` too)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A key and its self-signed certificate, PEM-encoded."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def cert_der_b64(self) -> str:
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def make_identity(common_name: str) -> Identity:
    """A fresh P-256 key and a self-signed certificate valid for :data:`SERVER_NAME`, for one
    launch (a day at most)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Identity(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
    )


class AutoTLS:
    """The host's side of one launch."""

    def __init__(self, client: Identity) -> None:
        self.client = client
        self.server_pem: bytes | None = None

    @classmethod
    def for_launch(cls) -> AutoTLS:
        return cls(make_identity("plughost-host"))

    def env(self) -> dict[str, str]:
        return {ENV_CLIENT_CERT: self.client.cert_pem.decode()}

    def accept_server(self, fields: list[str]) -> None:
        """Take the server certificate from the handshake's sixth field."""
        if len(fields) < 6 or not fields[5]:
            raise ProtocolError(
                "mutual TLS is on but the handshake line carries no server certificate (a "
                "sixth field, base64 DER); see docs/grpc.md", code="protocol.handshake")
        try:
            der = base64.b64decode(fields[5] + "=" * (-len(fields[5]) % 4))
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ProtocolError(f"the handshake's server certificate is not valid: {exc}",
                                code="protocol.handshake") from None
        self.server_pem = cert.public_bytes(serialization.Encoding.PEM)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        assert self.server_pem is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.server_pem, private_key=self.client.key_pem,
            certificate_chain=self.client.cert_pem)
