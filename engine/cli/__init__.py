"""The `palisade` commands: serve, check, test, score, bench, ask, audit, approvals."""
