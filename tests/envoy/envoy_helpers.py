"""Helpers of the Envoy tests: audit records, raw HTTP calls, the error a client got, Envoy's counters."""

from __future__ import annotations

import http.client
import json
import urllib.request
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


def ext_proc_counter(admin: int, listener: str, counter: str = "stream_msgs_sent") -> int:
    """A counter of the ext_proc filter of Envoy's ``listener`` (by default the messages it sent to
    Palisade; ``stream_msgs_received``: Palisade's answers; ``streams_failed``), from its admin."""
    name = f"http.{listener}.ext_proc.{counter}"
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=^{name}$", timeout=5) as answer:
        text: str = answer.read().decode()
    return int(text.split(":")[1]) if text.startswith(name) else 0
