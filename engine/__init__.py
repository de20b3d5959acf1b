"""The Palisade runtime: evaluator, decisions, ruleset registry, policy tests, CLI and gRPC server."""
