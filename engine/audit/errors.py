"""The audit log's errors: one base class, and the one a server must fail closed on."""

from __future__ import annotations


class AuditError(Exception):
    """Something about the audit log went wrong; the message says what and where."""


class AuditUnavailable(AuditError):
    """The record could not be made durable (disk full, I/O error, read-only, closed): fail closed."""


class DuplicateDecision(AuditError, ValueError):
    """A record with this decision id is already in the log; decision ids must be unique."""
