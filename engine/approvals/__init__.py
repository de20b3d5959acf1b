"""Human approvals for ESCALATE decisions: a durable store, their lifecycle, and the Check resume gate."""

from engine.approvals.gate import ApprovalGate, Gated
from engine.approvals.model import (
    AlreadyResolved,
    Approval,
    ApprovalError,
    ApprovalNotFound,
    Change,
    State,
    binding_digest,
)
from engine.approvals.service import Approvals
from engine.approvals.store import ApprovalStore, ApprovalUnavailable, Query
from engine.approvals.watch import watch

__all__ = [
    "AlreadyResolved",
    "Approval",
    "ApprovalError",
    "ApprovalGate",
    "ApprovalNotFound",
    "ApprovalStore",
    "ApprovalUnavailable",
    "Approvals",
    "Change",
    "Gated",
    "Query",
    "State",
    "binding_digest",
    "watch",
]
