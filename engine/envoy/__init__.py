"""Palisade as an Envoy external processor (ext_proc v3) for OpenAI-style chat traffic."""
