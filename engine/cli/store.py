"""`palisade store migrate`: bring a PostgreSQL database to the schema this Palisade knows."""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, load_config
from engine.store.postgres import PostgresError, migrate, shown


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema (versions in palisade_schema); refuse one newer than known."""
    try:
        url = args.url or load_config(args.config).store.url
    except ConfigError as exc:
        print(f"palisade store: {exc}", file=sys.stderr)
        return 2
    if not url:
        print("palisade store: no database: give --url, or --config with [store] url", file=sys.stderr)
        return 2
    try:
        before, after = migrate(url)
    except PostgresError as exc:
        print(f"palisade store: {exc}", file=sys.stderr)
        return 2
    print(f"{shown(url)}: schema from version {before} to {after}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `store` command group to the `palisade` parser."""
    store = sub.add_parser("store", help="the shared PostgreSQL store: migrations")
    commands = store.add_subparsers(dest="store_command", required=True)
    run = commands.add_parser("migrate", help=cmd_migrate.__doc__)
    run.add_argument("--url", help="postgresql://... (default: [store] url of --config)")
    run.add_argument("--config", help="the serve config file whose [store] url to migrate")
    run.set_defaults(func=cmd_migrate)
