"""The `[store]` settings: where the audit log and approvals live when replicas share them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from engine.store.postgres import is_url


class StoreConfig(BaseModel):
    """Empty ``url``: SQLite files in the data directory (one machine). ``postgresql://...``: one
    PostgreSQL database that every replica shares (docs/deploy.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = ""

    @field_validator("url")
    @classmethod
    def _postgres(cls, url: str) -> str:
        if url and not is_url(url):
            raise ValueError("must be empty (SQLite in the data directory) or a postgresql:// URL")
        return url
