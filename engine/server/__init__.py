"""The gRPC server: thin servicers over Guard and Approvals, health, reflection, TLS, worker processes."""
