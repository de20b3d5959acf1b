"""What a record holds: the decision's facts, keyed digests and its hash, and never the content itself."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import SECRET_TEXT, SSN, decide, open_log, request, verify

from detectors.base import ModelVersion
from engine.audit import AuditPaths
from engine.audit.canonical import CanonicalError, canonical_bytes
from engine.audit.record import GENESIS_HASH, SCHEMA_VERSION, record_hash
from engine.runtime.excerpts import Excerpt, ExcerptPart
from engine.runtime.ids import new_id

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _hmac_key(data_dir: Path) -> bytes:
    return bytes.fromhex(AuditPaths.of(data_dir).hmac_key.read_text().strip())


def test_a_block_record_holds_the_decision_and_no_content(tmp_path: Path) -> None:
    decision, req = decide(request())
    decision_id = new_id()
    with open_log(tmp_path) as log:
        record = log.append(decision, req, decision_id)
    assert record is not None
    data = record.data()
    assert data["v"] == SCHEMA_VERSION
    assert (data["seq"], data["prev_hash"], data["decision_id"]) == (1, GENESIS_HASH, decision_id)
    assert TIME.match(data["time"])
    assert data["outcome"] == "block"
    assert data["principal"] == {"id": "alice", "tenant": "acme"}
    assert data["request_id"] == "req-1"
    assert data["stage"] == "input"
    assert data["ruleset"] == {
        "name": "audit_test",
        "version": "1.0.0",
        "content_hash": decision.content_hash,
    }
    assert data["matches"] == [
        {
            "rule": "no_ssn",
            "arm": 0,
            "outcome": "block",
            "reason": "SSNs are not allowed here",
            "from_error": False,
        }
    ]
    start = SECRET_TEXT.index(SSN)
    assert data["findings"] == [
        {"detector": "ssn(content)", "type": "US_SSN", "score": 1, "start": start, "end": start + len(SSN)}
    ]
    assert [(d["node"], d["kind"]) for d in data["detectors"]] == [("ssn(content)", "regex")]
    assert isinstance(data["latency_us"], int)
    assert SSN not in record.body and "keep it" not in record.body


def test_digests_are_hmacs_of_the_content_and_the_canonical_tool_arguments(tmp_path: Path) -> None:
    arguments = {"path": "/tmp/x", "force": True, "n": 1.5}
    decision, req = decide(
        request("", stage="tool_call", tool={"name": "shell.exec", "arguments": arguments})
    )
    with open_log(tmp_path) as log:
        record = log.append(decision, req, new_id())
    assert record is not None
    data = record.data()
    key = _hmac_key(tmp_path)
    assert data["digests"]["content"] == hmac.new(key, b"", hashlib.sha256).hexdigest()
    assert (
        data["digests"]["tool_args"] == hmac.new(key, canonical_bytes(arguments), hashlib.sha256).hexdigest()
    )
    assert data["tool"] == {"name": "shell.exec", "server": ""}
    assert data["outcome"] == "escalate"
    assert "/tmp/x" not in record.body


def test_the_hash_covers_the_canonical_record_without_its_hash_field(tmp_path: Path) -> None:
    decision, req = decide(request("hello"))
    with open_log(tmp_path) as log:
        first = log.append(decision, req, new_id())
        second = log.append(decision, req, new_id(), at=datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert first is not None and second is not None
    for record in (first, second):
        data = record.data()
        assert record.body == canonical_bytes(data).decode()
        without = {k: v for k, v in data.items() if k != "hash"}
        assert hashlib.sha256(canonical_bytes(without)).hexdigest() == data["hash"] == record.hash
    assert second.prev_hash == first.hash
    assert second.data()["time"] == "2030-01-02T03:04:05.000006Z"


def test_the_database_never_holds_the_content(tmp_path: Path) -> None:
    log = open_log(tmp_path, checkpoint_every_records=2)
    for text in (SECRET_TEXT, "Give me a REFUND now", "plain words"):
        decision, req = decide(request(text))
        log.append(decision, req, new_id())
    decision, req = decide(
        request(
            "", stage="tool_call", tool={"name": "db.drop_table", "arguments": {"table": "customers-pii-xyz"}}
        )
    )
    log.append(decision, req, new_id())
    raw = b"".join(p.read_bytes() for p in AuditPaths.of(tmp_path).database.parent.glob("audit.db*"))
    log.close()
    raw += AuditPaths.of(tmp_path).database.read_bytes()
    for needle in (SSN, "keep it", "REFUND now", "plain words", "customers-pii-xyz"):
        assert needle.encode() not in raw
    assert _hmac_key(tmp_path).hex().encode() not in raw


def test_text_that_is_not_unicode_is_refused_before_it_reaches_the_writer(tmp_path: Path) -> None:
    decision, req = decide(request("hello", principal={"id": "\ud800"}))
    with open_log(tmp_path) as log:
        with pytest.raises(CanonicalError, match="surrogate"):
            log.append(decision, req, new_id())
        assert log.healthy
        assert log.append(*decide(request("hello")), new_id()) is not None


def test_model_versions_and_excerpts_are_additions_that_older_records_verify_beside(tmp_path: Path) -> None:
    plain, req = decide(request())  # a pattern detector's finding: recorded as records always were
    model = ModelVersion("prompt-injection", "sha256:" + "ab" * 32)
    report = dataclasses.replace(plain.detectors[0], models=(model,))
    modelled = dataclasses.replace(plain, detectors=(report,))
    masked = "my SSN is <US_SSN>, please keep it"
    excerpt = Excerpt(200, (ExcerptPart("text", "", masked, len(SECRET_TEXT), False),))
    with open_log(tmp_path) as log:
        old = log.append(plain, req, new_id())
        new = log.append(modelled, req, new_id(), excerpt=excerpt)
    assert old is not None and new is not None
    before = old.data()
    assert set(before["findings"][0]) == {"detector", "type", "score", "start", "end"}
    assert "models" not in before["detectors"][0] and "excerpt" not in before
    data = new.data()
    assert data["v"] == SCHEMA_VERSION == 1
    models = [{"name": "prompt-injection", "version": "sha256:" + "ab" * 32}]
    assert data["findings"][0]["models"] == models and data["detectors"][0]["models"] == models
    assert data["excerpt"] == {
        "limit": 200,
        "parts": [
            {"source": "text", "role": "", "text": masked, "length": len(SECRET_TEXT), "truncated": False}
        ],
        "omitted": 0,
        "error": "",
    }
    assert new.body.encode() == canonical_bytes(data) and record_hash(data) == data["hash"]
    assert SSN not in new.body
    assert verify(tmp_path).ok
