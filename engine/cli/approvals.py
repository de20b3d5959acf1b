"""`palisade approvals list|show|approve|deny|cancel|watch|token`: answer approvals on a running server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.approvals.approvers import new_token, token_digest
from engine.approvals.model import Approval, State
from engine.client.tls import add_tls_arguments

if TYPE_CHECKING:
    from engine.client.guard_client import GuardClient

Command = Callable[[argparse.Namespace], int]
TOKEN_ENV = "PALISADE_APPROVER_TOKEN"


def approval_data(approval: Approval) -> dict[str, Any]:
    """Plain data for printing: the state by name, times as ISO 8601 (UTC)."""
    data = asdict(approval) | {"state": approval.state.value}
    for key in ("created_us", "deadline_us", "resolved_us"):
        value = data.pop(key)
        data[key.removesuffix("_us")] = _iso(value) if value else None
    return data


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat()


def _print(approval: Approval, event: str = "") -> None:
    data = ({"event": event} if event else {}) | approval_data(approval)
    print(json.dumps(data, ensure_ascii=False), flush=True)


def cmd_list(args: argparse.Namespace, client: GuardClient) -> int:
    """Print the approvals that match, newest first, one JSON object a line."""
    for approval in client.list_approvals(
        queue=args.queue or "", state=args.state or "", min_age_s=args.min_age, limit=args.limit
    ):
        _print(approval)
    return 0


def cmd_show(args: argparse.Namespace, client: GuardClient) -> int:
    """Print one approval."""
    print(json.dumps(approval_data(client.get_approval(args.approval_id)), indent=2, ensure_ascii=False))
    return 0


def cmd_approve(args: argparse.Namespace, client: GuardClient) -> int:
    """Approve a pending approval: the request it is bound to may go ahead."""
    return _resolve(args, client, approve=True)


def cmd_deny(args: argparse.Namespace, client: GuardClient) -> int:
    """Deny a pending approval: the request it is bound to is blocked."""
    return _resolve(args, client, approve=False)


def _resolve(args: argparse.Namespace, client: GuardClient, *, approve: bool) -> int:
    token = os.environ.get(args.token_env, "")
    answer = client.resolve_approval(
        args.approval_id, approve=approve, approver=args.approver or "", comment=args.comment, token=token
    )
    _print(answer)
    return 0


def cmd_cancel(args: argparse.Namespace, client: GuardClient) -> int:
    """Withdraw a pending approval."""
    _print(client.cancel_approval(args.approval_id, actor=args.actor, comment=args.comment))
    return 0


def cmd_watch(args: argparse.Namespace, client: GuardClient) -> int:
    """Print one approval's (or a queue's) current state, then each change, one JSON object a line."""
    for event, approval in client.watch_approvals(
        approval_id=args.approval_id or "", queue=args.queue or "", timeout=args.for_s
    ):
        _print(approval, event)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Make an approver token: print it, and the line that lets the server know it."""
    token = new_token()
    print(f"# {args.name}'s approver token: give it to them; the server keeps only its digest")
    print(f"{TOKEN_ENV}={token}")
    print("# the line for the [approvers] table of the file that [approvals] approvers_file names:")
    print(f'{args.name} = "{token_digest(token)}"')
    return 0


def _run(command: Callable[[argparse.Namespace, GuardClient], int]) -> Command:
    def run(args: argparse.Namespace) -> int:
        from engine.client.guard_client import GuardError, client_from_arguments  # noqa: PLC0415  (keeps grpc out of others)

        client = client_from_arguments(args)
        if client is None:
            return 2
        with client:
            try:
                return command(args, client)
            except GuardError as exc:
                print(f"approvals: {exc.details or exc}", file=sys.stderr)
                return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `approvals` command group to the `palisade` parser."""
    group = sub.add_parser("approvals", help="list, answer and watch the approvals of a running server")
    commands = group.add_subparsers(dest="approvals_command", required=True)

    def add(name: str, command: Callable[[argparse.Namespace, GuardClient], int]) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=command.__doc__)
        parser.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of a running server")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each call")
        add_tls_arguments(parser)
        parser.set_defaults(func=_run(command))
        return parser

    listing = add("list", cmd_list)
    listing.add_argument("--queue", help="only this queue")
    listing.add_argument("--state", choices=[s.value for s in State], help="only this state")
    listing.add_argument("--min-age", type=float, default=0.0, help="only those opened this many seconds ago")
    listing.add_argument("--limit", type=int, default=0, help="at most this many (default: the server's)")
    add("show", cmd_show).add_argument("approval_id")
    for name, command in (("approve", cmd_approve), ("deny", cmd_deny)):
        answer = add(name, command)
        answer.add_argument("approval_id")
        answer.add_argument(
            "--approver", help="who answers (recorded in the audit log); with a token, its approver"
        )
        answer.add_argument(
            "--token-env",
            default=TOKEN_ENV,
            help=f"the environment variable holding your approver token (default {TOKEN_ENV})",
        )
        answer.add_argument("--comment", default="", help="why (recorded in the audit log)")
    cancel = add("cancel", cmd_cancel)
    cancel.add_argument("approval_id")
    cancel.add_argument("--actor", required=True, help="who withdraws it (recorded in the audit log)")
    cancel.add_argument("--comment", default="", help="why (recorded in the audit log)")
    watch = add("watch", cmd_watch)
    watch.add_argument("approval_id", nargs="?", help="one approval (default: a queue, or every queue)")
    watch.add_argument("--queue", help="only this queue")
    watch.add_argument("--for", dest="for_s", type=float, help="stop after this many seconds")
    token = commands.add_parser("token", help=cmd_token.__doc__)
    token.add_argument("name", help="the approver's name, as the audit log will record it")
    token.set_defaults(func=cmd_token)
