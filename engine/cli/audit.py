"""`palisade audit ...`: verify, inspect, export, prove and prune the audit log."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from engine.audit.checkpoint import Checkpoint, load_checkpoint
from engine.audit.config import AuditConfig, Retention
from engine.audit.errors import AuditError
from engine.audit.keys import load_signer, load_verifier
from engine.audit.log import AuditPaths
from engine.audit.pg_store import PgStore
from engine.audit.proof import ProofError, prove, verify_proof
from engine.audit.record import format_time
from engine.audit.retention import prune
from engine.audit.store import Filters, Store
from engine.audit.verify import verify_log

Command = Callable[[argparse.Namespace], int]
DEFAULT_DATA_DIR = "data"  # as `palisade serve`


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the chain, every checkpoint signature and Merkle root; exit 1 naming the first broken record."""
    store = _reader(args)
    verifier = load_verifier(Path(args.public_key) if args.public_key else _paths(args).public_key)
    report = verify_log(store, verifier, _against(args))
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    """Print one decision's record."""
    row = _reader(args).find(args.decision_id)
    if row is None:
        print(f"no record with decision id {args.decision_id}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(row.body), indent=2, ensure_ascii=False))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Print the records that match, oldest first, one JSON object a line."""
    filters = Filters(
        since=_time(args.since),
        until=_time(args.until),
        outcome=args.outcome or "",
        ruleset=args.ruleset or "",
        rule=args.rule or "",
        principal=args.principal or "",
        limit=args.limit,
    )
    return _emit(row.body for row in _reader(args).records(filters))


def cmd_export(args: argparse.Namespace) -> int:
    """Print every record (after --after-seq) as canonical JSON Lines, for a SIEM."""
    return _emit(row.body for row in _reader(args).records(Filters(after_seq=args.after_seq)))


def cmd_tail(args: argparse.Namespace) -> int:
    """Print the last records; with -f, keep printing new ones as they are written."""
    store = _reader(args)
    after = max(store.head().size - args.lines, 0)
    while True:
        rows = list(store.records(Filters(after_seq=after)))
        if _emit(row.body for row in rows):
            return 0
        after = rows[-1].seq if rows else after
        if not args.follow:
            return 0
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """Print the latest signed checkpoint (one JSON line), to keep outside the log for `verify --against`."""
    stored = _reader(args).last_checkpoint()
    if stored is None:
        print(
            "no signed checkpoint yet (the server signs one within checkpoint_every_seconds)", file=sys.stderr
        )
        return 1
    sys.stdout.write(stored.checkpoint().text())
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    """Print an inclusion proof of a record against the latest signed checkpoint, or --against's (JSON)."""
    print(json.dumps(prove(_reader(args), args.decision_id, _against(args)), indent=2, ensure_ascii=False))
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    """Check a proof from `prove` offline, with only the log's public key."""
    try:
        with open(args.proof_file, encoding="utf-8") as handle:
            proof = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.proof_file}: {exc}", file=sys.stderr)
        return 2
    try:
        proven = verify_proof(proof, load_verifier(Path(args.public_key)), _against(args))
    except ProofError as exc:
        print(f"proof INVALID: {exc}", file=sys.stderr)
        return 1
    print(
        f"proof valid: decision {proven.decision_id} is record {proven.seq} of log {proven.log_id}, "
        f"signed at {proven.size} records ({proven.checkpoint_time})"
    )
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    """Print the public key that checkpoints are signed with (PEM), for third-party verification."""
    path = Path(args.signing_key) if args.signing_key else _paths(args).signing_key
    if not path.exists():
        print(f"no audit signing key at {path} (the server creates it on first start)", file=sys.stderr)
        return 1
    print(load_signer(path).verifier.pem(), end="")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete records older than --max-age-days or beyond --max-records, cutting at a signed checkpoint."""
    if args.max_age_days is None and args.max_records is None:
        print("prune needs --max-age-days or --max-records", file=sys.stderr)
        return 2
    try:
        retention = Retention(max_age_days=args.max_age_days, max_records=args.max_records)
    except ValidationError as exc:
        print(f"invalid retention: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    database = Path(args.db) if args.db else _paths(args).database
    if not args.store and not database.is_file():
        print(f"no audit log at {database}", file=sys.stderr)
        return 2
    store = PgStore.connect(args.store) if args.store else Store.open_writer(database, full_sync=True)
    try:
        pruned = prune(store, retention, datetime.now(UTC))
    finally:
        store.close()
    print(f"pruned {pruned.deleted} record(s); the log now starts after record {pruned.start_after}")
    return 0


def _paths(args: argparse.Namespace) -> AuditPaths:
    return AuditPaths.of(args.data_dir, AuditConfig())


def _reader(args: argparse.Namespace) -> Store:
    if args.store:
        return PgStore.connect(args.store)
    return Store.open_reader(Path(args.db) if args.db else _paths(args).database)


def _against(args: argparse.Namespace) -> Checkpoint | None:
    return load_checkpoint(Path(args.against)) if args.against else None


def _time(text: str | None) -> str:
    """An RFC 3339 / ISO 8601 time (UTC if no offset) in the records' own form, or "" if not given."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AuditError(f"not an ISO 8601 time: {text!r} (e.g. 2025-01-31T12:00:00Z)") from None
    return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _emit(lines: Iterable[str]) -> bool:
    """Print ``lines``; True if the reader went away (a closed pipe), so the caller can stop."""
    try:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return True
    return False


def _run(command: Command) -> Command:
    """Turn audit errors, and a database SQLite cannot read, into a message and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except AuditError as exc:
            print(f"palisade audit: {exc}", file=sys.stderr)
        except sqlite3.Error as exc:
            print(f"palisade audit: cannot read the audit log: {exc}", file=sys.stderr)
        return 2

    run.__doc__ = command.__doc__
    return run


_AGAINST = {
    "verify": "a checkpoint kept outside the log (`palisade audit checkpoint`, a witness): "
    "the log must still hold every record it signed",
    "prove": "prove the record against this checkpoint (kept outside the log) instead of the latest",
    "verify-proof": "a later checkpoint kept outside the log: the proof must be for the tree it signs",
}


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="the server's data directory (default: ./data)"
    )
    parser.add_argument("--db", help="the audit database file (default: <data-dir>/audit/audit.db)")
    parser.add_argument("--store", help="a postgresql:// URL: the log that replicas share (keys: --data-dir)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `audit` command group to the `palisade` parser."""
    audit = sub.add_parser("audit", help="verify, inspect and prove the audit log of decisions")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    def add(name: str, command: Command, store: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=command.__doc__)
        if store:
            _store_options(parser)
        parser.set_defaults(func=_run(command))
        return parser

    verify = add("verify", cmd_verify)
    verify.add_argument("--public-key", help="PEM public key (default: the data dir's)")
    verify.add_argument("--against", metavar="CHECKPOINT_FILE", help=_AGAINST["verify"])
    add("show", cmd_show).add_argument("decision_id")
    query = add("query", cmd_query)
    query.add_argument("--since", help="records at or after this time (ISO 8601; UTC if no offset)")
    query.add_argument("--until", help="records before this time")
    for name in ("outcome", "ruleset", "rule", "principal"):
        query.add_argument(f"--{name}", help=f"only records with this {name}")
    query.add_argument("--limit", type=int, default=0, help="at most this many records")
    tail = add("tail", cmd_tail)
    tail.add_argument(
        "-n", "--lines", type=int, default=10, help="how many of the last records (default: 10)"
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("--interval", type=float, default=0.5, help="seconds between polls with -f")
    add("export", cmd_export).add_argument(
        "--after-seq", type=int, default=0, help="only records after this seq"
    )
    add("checkpoint", cmd_checkpoint)
    prove_cmd = add("prove", cmd_prove)
    prove_cmd.add_argument("decision_id")
    prove_cmd.add_argument("--against", metavar="CHECKPOINT_FILE", help=_AGAINST["prove"])
    verify_proof_cmd = add("verify-proof", cmd_verify_proof, store=False)
    verify_proof_cmd.add_argument("proof_file")
    verify_proof_cmd.add_argument("--public-key", required=True, help="the log's PEM public key")
    verify_proof_cmd.add_argument("--against", metavar="CHECKPOINT_FILE", help=_AGAINST["verify-proof"])
    pubkey = add("pubkey", cmd_pubkey)
    pubkey.add_argument("--signing-key", help="the private key file (default: <data-dir>/audit/signing.key)")
    prune_cmd = add("prune", cmd_prune)
    prune_cmd.add_argument("--max-age-days", type=float, help="delete records older than this")
    prune_cmd.add_argument("--max-records", type=int, help="keep at most this many records")
