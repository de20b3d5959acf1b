"""Audit evidence: every decision recorded, durably (group-committed SQLite), tamper-evident (hash chain,
signed RFC 6962 checkpoints) and without raw content. docs/audit.md describes it in full.

Wiring it into a server (``config.audit`` being an ``AuditConfig``, e.g. a ``[audit]`` TOML table)::

    from engine.audit import AuditConfig, AuditLog, AuditUnavailable

    audit = AuditLog.open(config.data_dir, config.audit, on_health=set_serving)  # at start; raises
    ...                                                # AuditUnavailable if the log cannot be opened
    decision_id = new_id()                             # engine.runtime.ids: UUIDv7
    decision = evaluator.evaluate(request, timeout_s=...)
    excerpt = evaluator.excerpter.excerpt(request) if evaluator.excerpter else None  # masked, if asked
    try:
        audit.append(decision, request, decision_id, excerpt=excerpt)  # sync: returns once fsynced
    except AuditUnavailable:
        ...answer by the ruleset's error policy (fail closed): never an unrecorded ALLOW
    ...reply with decision_id
    audit.close()                                      # at shutdown, after the last call: flush, checkpoint

``set_serving(ok: bool)`` is called (from the thread that saw it) when writing starts failing (False: report
NOT_SERVING) and when it works again (True). ``append`` is thread-safe and meant to be called from
every handler thread at once: the callers that arrive while one transaction is being fsynced share
the next one. ``audit.healthy`` is False while writing fails; the writer retries on its own.
Several processes (server workers) may open the same data directory: the chain stays whole.
"""

from engine.audit.config import AuditConfig, Retention
from engine.audit.errors import AuditError, AuditUnavailable, DuplicateDecision
from engine.audit.log import AuditLog, AuditPaths
from engine.audit.record import Record
from engine.audit.writer import WriterStats

__all__ = [
    "AuditConfig",
    "AuditError",
    "AuditLog",
    "AuditPaths",
    "AuditUnavailable",
    "DuplicateDecision",
    "Record",
    "Retention",
    "WriterStats",
]
