"""The value types of the policy language and the request fields a policy can read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Stage(StrEnum):
    """Where in an AI application's flow a Check is made."""

    INPUT = "input"
    OUTPUT = "output"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    RETRIEVAL = "retrieval"


ALL_STAGES = frozenset(Stage)
TOOL_STAGES = frozenset({Stage.TOOL_CALL, Stage.TOOL_RESULT})


class Outcome(IntEnum):
    """Decision outcomes, ordered by restrictiveness: the highest matching one wins."""

    ALLOW = 0
    FALLBACK = 1
    ESCALATE = 2
    BLOCK = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Type:
    """A language type: a kind, plus the element type for lists."""

    kind: str
    elem: Type | None = None

    def __str__(self) -> str:
        return f"list<{self.elem}>" if self.kind == "list" else self.kind


STRING = Type("string")
NUMBER = Type("number")
BOOL = Type("bool")
DYN = Type("dynamic")  # JSON values whose shape the ruleset cannot know (tool arguments)
MESSAGE = Type("message")
RESULT = Type("detector result")
PRINCIPAL = Type("principal")
TOOL = Type("tool")
ATTRIBUTES = Type("attributes")  # string-to-string maps: principal.attributes, metadata


def list_of(elem: Type) -> Type:
    return Type("list", elem)


STRINGS = list_of(STRING)
MESSAGES = list_of(MESSAGE)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    type: Type
    stages: frozenset[Stage]
    doc: str


# Roots of the request, then the members of each structured type.
ROOT_FIELDS: dict[str, FieldInfo] = {
    "content": FieldInfo(STRING, ALL_STAGES, "the text to check: `text`, else the messages joined"),
    "messages": FieldInfo(MESSAGES, ALL_STAGES, "the chat messages, each with role and content"),
    "stage": FieldInfo(STRING, ALL_STAGES, "the stage of this Check"),
    "tool": FieldInfo(TOOL, TOOL_STAGES, "the tool call: name, args, server"),
    "principal": FieldInfo(PRINCIPAL, ALL_STAGES, "who is calling: id, tenant, roles, attributes"),
    "metadata": FieldInfo(ATTRIBUTES, ALL_STAGES, "caller-supplied string key/values"),
}

MEMBERS: dict[Type, dict[str, Type]] = {
    MESSAGE: {"role": STRING, "content": STRING},
    TOOL: {"name": STRING, "server": STRING, "args": DYN, "args_text": STRING},
    PRINCIPAL: {"id": STRING, "tenant": STRING, "roles": STRINGS, "attributes": ATTRIBUTES},
    RESULT: {"found": BOOL, "count": NUMBER, "score": NUMBER, "types": STRINGS},
}


def is_textual(t: Type) -> bool:
    """Types a detector can scan: text, dynamic JSON, and lists of either or of messages."""
    if t.kind == "list" and t.elem is not None:
        return t.elem in (STRING, DYN, MESSAGE)
    return t in (STRING, DYN)


def comparable(a: Type, b: Type) -> bool:
    return DYN in (a, b) or a == b
