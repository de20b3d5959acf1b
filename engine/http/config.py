"""The `[http]` table: where LiteLLM's Generic Guardrail API listens and which ruleset applies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class HttpConfig(BaseModel):
    """Palisade as LiteLLM's `generic_guardrail_api` provider (engine/http/).

    The ruleset of a call is the one the ``ruleset_header`` names, else the guardrail's
    ``additional_provider_specific_params.ruleset`` (set in LiteLLM's config for that guardrail),
    else ``ruleset``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    listen: str = "127.0.0.1:8787"  # HOST:PORT; port 0 picks one (SO_REUSEPORT across workers)
    ruleset: str = ""  # the ruleset of a call that names none
    ruleset_header: str = "x-palisade-ruleset"  # a request header naming the ruleset; "": none
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # a larger body is refused (413)

    @field_validator("ruleset_header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _has_ruleset(self) -> HttpConfig:
        if self.enabled and not (self.ruleset or self.ruleset_header):
            raise ValueError("enabled needs ruleset or ruleset_header")
        return self
