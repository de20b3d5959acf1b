"""The HTTP front door: LiteLLM's Generic Guardrail API, served by `palisade serve` when `[http]` says so."""
