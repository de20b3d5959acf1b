"""`palisade mcp ... -- COMMAND ARGS`: a guard proxy in front of an MCP server, on this process's stdio."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from dsl.diagnostics import CompileError
from engine.config import ConfigError, MetricsConfig, load_config
from engine.mcp.config import McpConfig
from engine.runtime.registry import UnknownRuleset
from engine.runtime.request import Principal

if TYPE_CHECKING:
    from engine.config import ServeConfig

ENVIRONMENT = {"principal": "PALISADE_PRINCIPAL", "tenant": "PALISADE_TENANT", "roles": "PALISADE_ROLES"}


def cmd_mcp(args: argparse.Namespace) -> int:
    """Start the MCP server COMMAND and serve MCP on stdio: each tools/call checked at `tool_call`
    before the server sees it and its result at `tool_result`; tools/list, resources/read and
    prompts/get checked too (stdout carries MCP only; messages go to stderr)."""
    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    if bool(command) == bool(args.url):
        print("palisade mcp: give the MCP server's command after --, or its --url", file=sys.stderr)
        return 2
    from engine.server.workers import configure_logging  # noqa: PLC0415  (keeps grpc out of other commands)

    configure_logging()
    try:
        config = load_config(args.config, {"rulesets": args.rulesets, "data_dir": args.data_dir})
        proxy = mcp_settings(config.mcp, args)
    except ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    if not proxy.ruleset:
        print("palisade mcp: name the ruleset (--ruleset, or ruleset in [mcp])", file=sys.stderr)
        return 2
    return _serve(config, proxy, command, args.url or "", args.listen or "")


def mcp_settings(base: McpConfig, args: argparse.Namespace) -> McpConfig:
    """The [mcp] table, then the environment (PALISADE_PRINCIPAL, _TENANT, _ROLES), then the flags."""
    data: dict[str, Any] = base.model_dump()
    for key, variable in ENVIRONMENT.items():
        if os.environ.get(variable):
            data[key] = os.environ[variable]
    flags = {"ruleset": args.ruleset, "server": args.server, "principal": args.principal}
    flags |= {"tenant": args.tenant, "roles": args.roles, "approval_wait_s": args.approval_wait}
    data |= {key: value for key, value in flags.items() if value is not None}
    if isinstance(data["roles"], str):
        data["roles"] = tuple(role.strip() for role in data["roles"].split(",") if role.strip())
    try:
        return McpConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"mcp: {exc}") from None


def _serve(config: ServeConfig, proxy: McpConfig, command: list[str], url: str, listen: str) -> int:
    from engine.telemetry import observed  # noqa: PLC0415

    # [tracing] as `palisade serve` does; no [metrics]: a proxy has no /metrics for them to reach
    with observed(config.model_copy(update={"metrics": MetricsConfig()}), endpoint=False):
        return _proxy(config, proxy, command, url, listen)


def _proxy(config: ServeConfig, proxy: McpConfig, command: list[str], url: str, listen: str) -> int:
    from engine.guard import Guard, StartError  # noqa: PLC0415  (keeps the MCP SDK out of other commands)
    from engine.mcp.checks import Caller, McpChecks  # noqa: PLC0415
    from engine.mcp.guarded import Guarded  # noqa: PLC0415
    from engine.mcp.pins import Pins, pins_path  # noqa: PLC0415
    from engine.mcp.proxy import serve  # noqa: PLC0415
    from engine.runtime.heap import freeze_heap  # noqa: PLC0415

    try:
        os.makedirs(config.data_dir, exist_ok=True)
        guard = Guard.open(config)
    except CompileError as exc:
        print(f"{exc}\nrefusing to start: {len(exc.diagnostics)} error(s) in the rulesets", file=sys.stderr)
        return 1
    except (StartError, OSError) as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 1
    with guard:
        try:
            guard.registry.get(proxy.ruleset)
        except UnknownRuleset as exc:
            print(f"palisade mcp: {exc}", file=sys.stderr)
            return 2
        freeze_heap()  # as `palisade serve` does once serving starts
        principal = Principal(proxy.principal, proxy.tenant, proxy.roles)
        checks = McpChecks(guard, config.limits, Caller(proxy.ruleset, proxy.server, principal))
        try:
            guarded = Guarded(checks, proxy, Pins(pins_path(config.data_dir, proxy.server)))
            return asyncio.run(serve(guarded, command, url, listen, proxy.max_message_bytes))
        except StartError as exc:
            print(f"refusing to start: {exc}", file=sys.stderr)
            return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `palisade mcp` to the `palisade` parser."""
    mcp = sub.add_parser(
        "mcp", help="guard an MCP server: palisade mcp --ruleset NAME -- COMMAND ARGS | --url URL"
    )
    mcp.add_argument("--ruleset", help="the ruleset of every Check (default: ruleset in [mcp])")
    mcp.add_argument("--server", help="the MCP server's name, as rules see it in tool.server")
    mcp.add_argument("--principal", help=f"principal.id of every Check (or ${ENVIRONMENT['principal']})")
    mcp.add_argument("--tenant", help=f"principal.tenant (or ${ENVIRONMENT['tenant']})")
    mcp.add_argument("--roles", help=f"principal.roles, comma-separated (or ${ENVIRONMENT['roles']})")
    mcp.add_argument("--approval-wait", type=float, help="seconds an escalated call waits for its approval")
    mcp.add_argument("--url", help="a remote MCP server's Streamable HTTP endpoint, instead of a COMMAND")
    mcp.add_argument(
        "--listen", help="serve the client Streamable HTTP at http://HOST:PORT/mcp (one session), not stdio"
    )
    mcp.add_argument("--rulesets", help="directory of .pal rulesets (default: ./rulesets)")
    mcp.add_argument(
        "--data-dir", help="durable state: the audit log and approvals, as serve's (default ./data)"
    )
    mcp.add_argument("--config", help="the TOML file `palisade serve` reads; its [mcp] table too")
    mcp.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")
    mcp.set_defaults(func=cmd_mcp)
