"""What a client needs for a TLS server, and the command-line flags that give it (no grpc imported)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ClientTls:
    """PEM files: the CA that signed the server's certificate (empty: the system's roots), and a
    client certificate with its key for a server that asks for one (mutual TLS)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(root certificates, private key, certificate chain), as grpc.ssl_channel_credentials takes them."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a client certificate and its key go together")
        return _read(self.ca_file), _read(self.key_file), _read(self.cert_file)


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """--tls, --tls-ca, --tls-cert, --tls-key: how a command reaches a server that speaks TLS."""
    parser.add_argument("--tls", action="store_true", help="the server speaks TLS (implied by the others)")
    parser.add_argument(
        "--tls-ca", default="", help="PEM CA of the server's certificate (default: system roots)"
    )
    parser.add_argument(
        "--tls-cert", default="", help="PEM client certificate, for a server that asks for one"
    )
    parser.add_argument("--tls-key", default="", help="PEM key of --tls-cert")


def tls_from_arguments(args: argparse.Namespace) -> ClientTls | None:
    """The ClientTls the flags describe, or None for a plaintext connection."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    return ClientTls(args.tls_ca, args.tls_cert, args.tls_key)
