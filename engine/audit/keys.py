"""Audit keys: the Ed25519 checkpoint key and the HMAC content key, created on first use (mode 0600)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.audit.errors import AuditError
from engine.audit.files import create_file

HMAC_KEY_BYTES = 32
_PRIVATE_MODE = 0o600


class AuditKeyError(AuditError):
    """A key file is missing, unreadable or not a key of the expected kind; the message names the file."""


class Signer:
    """Signs checkpoint statements with the log's Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.verifier = Verifier(key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Verifier:
    """Checks checkpoint signatures with the log's Ed25519 public key; all a third party needs."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = hashlib.sha256(der).hexdigest()  # as RFC 6962 names a log by its key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def pem(self) -> str:
        pem = self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")


class Digester:
    """Keyed digests (HMAC-SHA-256) of request content, so records can be matched without holding it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < HMAC_KEY_BYTES:
            raise AuditKeyError(f"the HMAC key must have at least {HMAC_KEY_BYTES} bytes, not {len(key)}")
        # keyed once; each digest copies it. hmac.digest() would key OpenSSL anew and release the
        # GIL on every call, which in a busy server costs a time slice of another thread each time
        self._keyed = hmac.new(key, digestmod="sha256")
        self.key_id = self.digest(b"palisade audit key id")[:16]  # names the key; reveals nothing of it

    def digest(self, data: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(data)
        return mac.hexdigest()


def load_or_create_signer(path: Path) -> Signer:
    """The signing key at ``path``, generated there (with ``<path>.pub`` beside it) if there is none."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_private(path, pem)
    signer = load_signer(path)
    public = public_key_path(path)
    if not public.exists():
        create_file(public, signer.verifier.pem().encode("ascii"), 0o644)
    return signer


def load_signer(path: Path) -> Signer:
    """The signing key at ``path``; it must exist."""
    return Signer(_load_private(path))


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name.removesuffix(".key") + ".pub")


def load_verifier(path: Path) -> Verifier:
    """A public key (PEM) from ``path``, for verification with nothing else."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a damaged key can name an unknown algorithm
        raise AuditKeyError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path}: not an Ed25519 public key")
    return Verifier(key)


def load_or_create_digester(path: Path) -> Digester:
    """The HMAC key at ``path`` (hex), generated there if there is none."""
    if not path.exists():
        _create_private(path, (secrets.token_hex(HMAC_KEY_BYTES) + "\n").encode("ascii"))
    text = _read(path).decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AuditKeyError(f"{path}: the HMAC key must be hex digits") from None
    try:
        return Digester(key)
    except AuditKeyError as exc:
        raise AuditKeyError(f"{path}: {exc}") from None


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError):
        raise AuditKeyError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: not an Ed25519 private key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot read: {exc.strerror}") from None


def _create_private(path: Path, data: bytes) -> None:
    create_file(path, data, _PRIVATE_MODE)  # another process made it first: theirs is the key
