"""The server's TLS credentials from the `[tls]` files: read and checked at start, and again on reload."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from engine.config import Tls


class TlsError(ValueError):
    """A `[tls]` file cannot be used; the message names it and says why."""


class ServerTls:
    """Credentials for a server with ``tls`` on. ``reload`` reads the files again: connections made
    after it get the new certificate (and client CA); those already open keep theirs."""

    def __init__(self, tls: Tls) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._next: grpc.ServerCertificateConfiguration | None = None
        # grpc's fetcher may return None ("no change"); grpc-stubs types it without None
        fetch: Callable[[], grpc.ServerCertificateConfiguration] = self._fetch  # type: ignore[assignment]
        self.credentials = grpc.dynamic_ssl_server_credentials(
            _configuration(tls), fetch, require_client_authentication=bool(tls.client_ca_file)
        )

    def reload(self) -> None:
        """Read and check the files again; raises TlsError naming a bad one, and then changes nothing."""
        configuration = _configuration(self._tls)
        with self._lock:
            self._next = configuration

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc asks before each handshake: the configuration read since it last asked, else None."""
        with self._lock:
            found, self._next = self._next, None
        return found


def _configuration(tls: Tls) -> grpc.ServerCertificateConfiguration:
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
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)


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
