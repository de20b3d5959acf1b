"""Helpers of the Envoy tests: the audit records, raw HTTP calls, and the error body a client got."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import openai

from engine.audit import AuditPaths
from engine.audit.store import Store

HOLD_CHARS = 16  # the stream_hold_chars the tests run with


def recorded(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every decision record in the audit log, by decision id."""
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return {row.decision_id: json.loads(row.body) for row in store.records()}
    finally:
        store.close()


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-style error answer."""
    body = exc.response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    error: dict[str, Any] = body["error"]
    return error


def post(port: int, path: str, body: bytes, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP call: status, headers (lower-case names) and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body, {"content-type": "application/json", "x-user": "alice"})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()
