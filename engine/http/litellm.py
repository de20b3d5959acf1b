"""LiteLLM's Generic Guardrail API: its request and response, and the Checks one request makes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dsl.types import Outcome, Stage
from engine.config import Limits
from engine.guard import Checked, Guard
from engine.http.config import HttpConfig
from engine.protocol.request_codec import InvalidRequest, bounded
from engine.runtime.redaction import split_lines
from engine.runtime.request import Message, Principal, Request, ToolCall

PATH = "/beta/litellm_basic_guardrail_api"


class Function(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = ""
    arguments: str = ""  # JSON, as OpenAI sends it


class ToolUse(BaseModel):
    """One tool call of the model's, in OpenAI's shape."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    function: Function = Field(default_factory=Function)


class GuardrailRequest(BaseModel):
    """What LiteLLM's `generic_guardrail_api` guardrail posts (LitellmBasicGuardrailRequest); LiteLLM
    sends null for what a call lacks."""

    model_config = ConfigDict(extra="ignore")

    texts: list[str] = Field(default_factory=list)
    tool_calls: list[ToolUse] = Field(default_factory=list)
    structured_messages: list[dict[str, Any]] | None = None
    request_data: dict[str, Any] = Field(default_factory=dict)
    input_type: Literal["request", "response"]
    litellm_call_id: str | None = None
    litellm_trace_id: str | None = None
    additional_provider_specific_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator(
        "texts", "tool_calls", "request_data", "additional_provider_specific_params", mode="before"
    )
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        return [] if info.field_name in ("texts", "tool_calls") else {}


Action = Literal["NONE", "BLOCKED", "GUARDRAIL_INTERVENED"]


def answer(action: Action, *, reason: str = "", texts: list[str] | None = None) -> dict[str, Any]:
    """A LitellmBasicGuardrailResponse."""
    body: dict[str, Any] = {"action": action}
    if reason:
        body["blocked_reason"] = reason
    if texts is not None:
        body["texts"] = texts
    return body


class UnknownRulesetName(LookupError):
    """The call names no ruleset, and the `[http]` table gives none."""


def ruleset_of(config: HttpConfig, call: GuardrailRequest, headers: Mapping[str, str]) -> str:
    """The ruleset the header names, else the one the guardrail's params name, else the config's."""
    params = call.additional_provider_specific_params
    named = headers.get(config.ruleset_header, "") if config.ruleset_header else ""
    named = named or str(params.get("ruleset") or "")
    if not (named or config.ruleset):
        raise UnknownRulesetName("no ruleset: send the ruleset header or configure [http] ruleset")
    return named or config.ruleset


def principal_of(call: GuardrailRequest) -> tuple[Principal, dict[str, str]]:
    """The end user (else the key's user) and the team, and the call's ids as metadata."""
    data = call.request_data
    user = str(data.get("user_api_key_end_user_id") or data.get("user_api_key_user_id") or "")
    principal = Principal(id=user, tenant=str(data.get("user_api_key_team_id") or ""))
    metadata = {
        "litellm_call_id": call.litellm_call_id or "",
        "litellm_trace_id": call.litellm_trace_id or "",
    }
    return principal, {k: v for k, v in metadata.items() if v}


def decide(guard: Guard, limits: Limits, ruleset: str, call: GuardrailRequest) -> dict[str, Any]:
    """Check the texts (at `input` for a request, `output` for a response) and, in a response, each
    tool call at `tool_call`; answer by the most restrictive. Raises runtime.registry.UnknownRuleset."""
    stage = Stage.INPUT if call.input_type == "request" else Stage.OUTPUT
    principal, metadata = principal_of(call)
    base = Request(stage=stage, principal=principal, metadata=metadata)
    asked: list[Checked] = []
    try:
        if call.texts:
            if stage is Stage.INPUT:
                texts = Request(stage, messages=tuple(Message("user", t) for t in call.texts))
            else:
                texts = Request(stage, text="\n".join(call.texts))
            asked.append(_check(guard, limits, ruleset, base, texts))
        if stage is Stage.OUTPUT:
            for use in call.tool_calls:
                tool = Request(Stage.TOOL_CALL, tool=ToolCall(use.function.name, _arguments(use.function)))
                asked.append(_check(guard, limits, ruleset, base, tool))
    except InvalidRequest as exc:
        return answer("BLOCKED", reason=f"Palisade refused this request: {exc}")
    return _answered(asked, call)


def _check(guard: Guard, limits: Limits, ruleset: str, base: Request, part: Request) -> Checked:
    request = Request(
        stage=part.stage,
        messages=part.messages,
        text=part.text,
        tool=part.tool,
        principal=base.principal,
        metadata=base.metadata,
    )
    return guard.check(ruleset, bounded(ruleset, request, limits))


def _arguments(function: Function) -> dict[str, Any]:
    """A tool call's arguments (a JSON object in a string); what is not one is checked as ``_raw``."""
    try:
        value = json.loads(function.arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": function.arguments}
    return value if isinstance(value, dict) else {"_raw": function.arguments}


def _answered(asked: list[Checked], call: GuardrailRequest) -> dict[str, Any]:
    """NONE for ALLOW; the texts rewritten for their redaction, or an answer's canned reply; else
    BLOCKED, naming the rule (an ESCALATE names its approval: LiteLLM cannot wait for it)."""
    if not asked:
        return answer("NONE")
    outcome = max(c.decision.outcome for c in asked)
    deciding = next(c for c in asked if c.decision.outcome is outcome)
    if outcome is Outcome.ALLOW:
        return answer("NONE")
    action = deciding.decision.action
    kind = action.fallback if outcome is Outcome.FALLBACK and action is not None else ""
    if kind == "redact" and deciding is asked[0] and call.texts and deciding.decision.redacted is not None:
        pieces = split_lines(call.texts, deciding.decision.redacted)
        if pieces is not None:
            return answer("GUARDRAIL_INTERVENED", texts=list(pieces))
    if kind == "reply" and action is not None and call.input_type == "response" and call.texts:
        return answer("GUARDRAIL_INTERVENED", texts=[action.fallback_value] + [""] * (len(call.texts) - 1))
    return answer("BLOCKED", reason=_reason(deciding))


def _reason(checked: Checked) -> str:
    rule, reason = checked.cited
    ids = f"rule {rule}, ruleset {checked.decision.ruleset}, decision {checked.decision_id}"
    if checked.decision.outcome is Outcome.ESCALATE and checked.approval is not None:
        ids += f"; approval {checked.approval.id} pending in queue {checked.approval.queue}"
    return f"Palisade blocked this: {reason} ({ids})" if reason else f"Palisade blocked this ({ids})"
