"""The Python client of a Palisade server (guard_client.GuardClient) and its TLS settings (tls)."""
