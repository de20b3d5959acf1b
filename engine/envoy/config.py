"""The `[envoy]` table: where the ext_proc processor listens, the ruleset that applies, who asks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TRACE_HEADERS = ("traceparent", "tracestate")  # W3C trace context: the exchange's Checks join the trace


class EnvoyConfig(BaseModel):
    """Palisade as an Envoy external processor (engine/envoy/) for OpenAI-style traffic (chat, Responses).

    The ruleset of an exchange is the one the ``ruleset_header`` names (a header an earlier filter
    sets; never one a client may choose), else the one ``routes`` gives the Envoy route (the filter
    must send the ``xds.route_name`` attribute), else ``ruleset``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    listen: str = "127.0.0.1:50052"  # HOST:PORT of the ExternalProcessor service; port 0 picks one
    ruleset: str = ""  # the ruleset of any exchange that no header or route names
    routes: dict[str, str] = Field(default_factory=dict)  # Envoy route name -> ruleset
    ruleset_header: str = ""  # a request header naming the ruleset; "": none
    principal_header: str = ""  # request header -> principal.id (e.g. a JWT subject set by jwt_authn)
    tenant_header: str = ""  # -> principal.tenant
    roles_header: str = ""  # -> principal.roles, comma-separated
    metadata_headers: dict[str, str] = Field(default_factory=dict)  # metadata key -> request header
    approval_header: str = "x-palisade-approval-id"  # a client resumes an escalated request with it
    chat_paths: tuple[str, ...] = ("/v1/chat/completions",)  # POSTs to these are guarded as chats
    responses_paths: tuple[str, ...] = ("/v1/responses",)  # and to these as the Responses API
    # what happens to any other request: "block" (403, the safe default) or "allow" (passed unchecked)
    other_paths: str = Field(default="block", pattern="^(allow|block)$")
    input_roles: tuple[str, ...] = ("user",)  # messages checked at `input` (tool messages: tool_result)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # a larger body is refused (413)
    # streaming: text is held back until this many characters follow it, so that any match of up
    # to this length is checked before a character of it leaves (at most twice this, plus one
    # event, is held; the first text leaves once this many characters follow it)
    stream_hold_chars: int = Field(default=64, ge=1, le=65_536)
    threads: int = Field(default=256, ge=1, le=4096)  # exchanges in flight (each holds a thread)

    @field_validator("ruleset_header", "principal_header", "tenant_header", "roles_header", "approval_header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # Envoy sends header names lower-cased

    @field_validator("metadata_headers")
    @classmethod
    def _lower_values(cls, value: dict[str, str]) -> dict[str, str]:
        return {key: header.lower() for key, header in value.items()}

    def request_attributes(self) -> list[str]:
        """What the ext_proc filter's ``request_attributes`` must list for a route that skips the
        request headers message (so that the request body carries who asks, and where)."""
        named = [
            self.ruleset_header,
            self.principal_header,
            self.tenant_header,
            self.roles_header,
            *self.metadata_headers.values(),
            self.approval_header,
            "x-request-id",
            *TRACE_HEADERS,
        ]
        headers = [f'request.headers["{name}"]' for name in dict.fromkeys(named) if name]
        return ["xds.route_name", "request.path", "request.method", *headers]

    @model_validator(mode="after")
    def _has_ruleset(self) -> EnvoyConfig:
        if self.enabled and not (self.ruleset or self.routes or self.ruleset_header):
            raise ValueError("enabled needs ruleset, routes or ruleset_header")
        return self
