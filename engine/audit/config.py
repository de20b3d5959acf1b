"""Audit settings: durability, checkpoint cadence, retention, key locations and the witness."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Retention(BaseModel):
    """How much of the log to keep; unset keeps everything. Pruning cuts only at a signed checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_days: float | None = Field(default=None, gt=0)
    max_records: int | None = Field(default=None, ge=1)

    @property
    def enabled(self) -> bool:
        return self.max_age_days is not None or self.max_records is not None


class AuditConfig(BaseModel):
    """The `[audit]` settings. Paths left empty default to files in ``<data_dir>/audit/``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # sync: append returns once the record is fsynced
    durability: Literal["sync", "async", "journal"] = "journal"
    # journal: append returns once the record is in the journal file (one write(), no fsync), which
    # survives the process; the background writer commits it with async_flush_ms and fsyncs
    # async: queued records are committed this long after the first of them (0: at once), so that
    # one transaction carries many; a crash loses at most this window's records (and the batch in hand)
    async_flush_ms: float = Field(default=5.0, ge=0, le=1000)
    checkpoint_every_records: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: float = Field(default=60.0, gt=0)
    queue_size: int = Field(default=10_000, ge=1)  # records waiting for the writer; beyond it, append waits
    retry_every_seconds: float = Field(default=1.0, gt=0)  # how often an unhealthy writer tries again
    # a commit still unfinished after this long (a frozen or stalled disk): unhealthy (NOT_SERVING),
    # and new records are refused, until it finishes
    stall_seconds: float = Field(default=5.0, gt=0)
    retention: Retention = Field(default_factory=Retention)
    hmac_key_path: str = ""  # hex key for the content digests; default <data_dir>/audit/hmac.key
    signing_key_path: str = ""  # Ed25519 PEM (PKCS8); default <data_dir>/audit/signing.key
    # the witness (engine/audit/witness.py): each checkpoint signed is also kept outside the log
    witness_dir: str = ""  # a folder: one file per checkpoint, <log_id>-<size>.json
    witness_command: str = ""  # run with each checkpoint on stdin; split like a shell's words, no shell
    witness_timeout_seconds: float = Field(default=10.0, gt=0)  # then the command is killed

    @field_validator("witness_command")
    @classmethod
    def _command_splits(cls, command: str) -> str:
        shlex.split(command)  # unbalanced quotes raise ValueError, which names the setting
        return command
