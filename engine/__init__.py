"""Palisade's engine: the Check use case (guard), evidence, approvals, the runtime, the front doors."""
