"""Fixtures for the approvals tests: a real approvals database and audit log in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import open_log

from engine.approvals import ApprovalGate, Approvals, ApprovalStore
from engine.audit import AuditLog


@pytest.fixture()
def audit_dir(tmp_path: Path) -> Path:
    return tmp_path / "audit"


@pytest.fixture()
def audit(audit_dir: Path) -> Iterator[AuditLog]:
    log = open_log(audit_dir)
    yield log
    log.close()


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[ApprovalStore]:
    opened = ApprovalStore.open(tmp_path)
    yield opened
    opened.close()


@pytest.fixture()
def approvals(store: ApprovalStore, audit: AuditLog) -> Approvals:
    return Approvals(store, audit)


@pytest.fixture()
def gate(approvals: Approvals) -> ApprovalGate:
    return ApprovalGate(approvals)
