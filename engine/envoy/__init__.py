"""Palisade as an Envoy external processor (ext_proc v3) for OpenAI-style traffic (chat completions, Responses)."""
