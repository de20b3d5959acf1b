"""The server's TLS credentials, read and checked at start from the `[tls]` files."""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from engine.config import Tls


class TlsError(ValueError):
    """A `[tls]` file cannot be used; the message names it and says why."""


def server_credentials(tls: Tls) -> grpc.ServerCredentials | None:
    """Credentials for ``tls`` (None when TLS is off). Raises TlsError naming a bad file."""
    if not tls.enabled:
        return None
    cert = _read(tls.cert_file, "cert_file")
    _certificates(cert, "cert_file", tls.cert_file)
    key = _read(tls.key_file, "key_file")
    try:
        load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"key_file {tls.key_file}: not an unencrypted PEM private key ({exc})") from None
    client_ca = _read(tls.client_ca_file, "client_ca_file") if tls.client_ca_file else None
    if client_ca is not None:
        _certificates(client_ca, "client_ca_file", tls.client_ca_file)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{setting} {path}: cannot read it: {exc.strerror}") from None


def _certificates(data: bytes, setting: str, path: str) -> None:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{setting} {path}: not PEM certificates ({exc})") from None
