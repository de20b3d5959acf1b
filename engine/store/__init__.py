"""Storage shared by replicas: PostgreSQL connections, the schema of the audit log and approvals."""
