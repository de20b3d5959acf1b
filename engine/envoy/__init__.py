"""Palisade as an Envoy external processor (ext_proc v3) for OpenAI chat and Responses API traffic."""
