"""The `palisade` command line: check, test, graph and eval rulesets; serve and query the service."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dsl import render
from dsl.compiler import run
from dsl.diagnostics import CompileError, render_all, to_json
from engine.cli import approvals as approvals_cli
from engine.cli import audit as audit_cli
from engine.cli import diff, gate, policytest, rollout, score
from engine.cli import mcp as mcp_cli
from engine.cli import store as store_cli
from engine.cli.bench import command as bench
from engine.client.tls import add_tls_arguments
from engine.runtime.evaluator import Evaluator
from engine.runtime.registry import SOURCE_SUFFIX, Registry, UnknownRuleset, compile_rulesets, source_files
from engine.runtime.request import Request, RequestError, request_from_dict

if TYPE_CHECKING:
    from engine.client.guard_client import CheckResult

Command = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """Stops a command: the message goes to stderr and ``status`` is the exit status (2: bad usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def cmd_check(args: argparse.Namespace) -> int:
    """Compile every ruleset and library; print all diagnostics; exit 1 on any error."""
    diagnostics, sources, files = [], {}, 0
    for path in source_files(*args.paths):
        files += 1
        c = run(path)
        diagnostics.extend(c.diagnostics)
        sources.update(c.sources)
    errors = sum(d.is_error for d in diagnostics)
    if args.format == "json":
        print(to_json(diagnostics))
    else:
        if diagnostics:
            print(render_all(diagnostics, sources), file=sys.stderr)
        warnings = len(diagnostics) - errors
        print(f"checked {files} file(s): {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors or not files else 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run the policy tests beside each ruleset; exit 1 on any failure."""
    results: list[policytest.CaseResult] = []
    for path in policytest.test_files(*args.paths):
        try:
            results.extend(policytest.run_file(path))
        except CompileError as exc:
            print(exc, file=sys.stderr)
            results.append(policytest.CaseResult(path, 1, "<compile>", False, "ruleset does not compile"))
    for result in results:
        if args.verbose or not result.passed:
            print(result)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


def _evaluator(args: argparse.Namespace) -> Evaluator:
    """RULESET: a .pal file, or a ruleset's name looked up in --rulesets (--version pins one)."""
    if args.ruleset.endswith(SOURCE_SUFFIX) or os.path.isfile(args.ruleset):
        if args.version:
            raise CommandError(f"--version pins a ruleset given by name; {args.ruleset} is a file", 2)
        return _compile_file(args.ruleset)
    return _load_named(args.ruleset, args.version or "", args.rulesets)


def _compile_file(path: str) -> Evaluator:
    c = run(path)
    if not c.ok or c.graph is None:
        raise CommandError(render_all(c.diagnostics, c.sources) or f"{path}: not a ruleset")
    return Evaluator(c.graph)


def _load_named(name: str, version: str, rulesets: str) -> Evaluator:
    """The ruleset ``name`` (at ``version``; "": its highest) among those `palisade serve --rulesets`
    would load; only its own detectors are loaded."""
    if not os.path.exists(rulesets):
        raise CommandError(f"no file {name!r}, and no {rulesets!r} to find a ruleset of that name in", 2)
    try:
        graphs = compile_rulesets(rulesets)
    except CompileError as exc:
        raise CommandError(f"{exc}\n{rulesets}: {len(exc.diagnostics)} error(s) in the rulesets") from exc
    named = {key: graph for key, graph in graphs.items() if key[0] == name}
    try:
        if not named:
            raise UnknownRuleset(name, version, sorted({n for n, _ in graphs}))
        return Registry.of(named).get(name, version)
    except UnknownRuleset as exc:
        raise CommandError(f"{rulesets}: {exc}", 2) from exc


def _read_request(value: str) -> str:
    """A request argument's JSON: ``-`` reads stdin, ``@FILE`` reads FILE, anything else is the JSON."""
    if value == "-":
        return sys.stdin.read()
    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise RequestError(f"cannot read {value[1:]}: {exc.strerror}") from exc


def _print_result(result: CheckResult) -> None:
    """A decision as `ask` and `eval` print it: CheckResult's fields as JSON."""
    print(json.dumps(result.to_dict(), indent=2))


def cmd_graph(args: argparse.Namespace) -> int:
    """Print the decision graph of a ruleset (file or name) as text or Graphviz DOT."""
    graph = _evaluator(args).graph
    print(render.to_dot(graph) if args.format == "dot" else render.to_text(graph))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Decide one request against a ruleset (file or name) in this process, without a server, and print
    it as `ask` does; nothing is audited and no approval is opened (decision_id and approval_id stay
    empty)."""
    evaluator = _evaluator(args)
    try:
        request = request_from_dict(json.loads(_read_request(args.request)))
    except (json.JSONDecodeError, RequestError) as exc:
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2
    _print_result(_local_result(evaluator, request))
    return 0


def _local_result(evaluator: Evaluator, request: Request) -> CheckResult:
    """The decision as a server would answer it, less what only a server does (audit, approvals)."""
    from engine.client.guard_client import result_from_proto  # noqa: PLC0415  (keeps grpc out of others)
    from engine.protocol.response_codec import response_from_decision  # noqa: PLC0415

    decision, default = evaluator.evaluate(request), evaluator.graph.default
    response = response_from_decision(
        decision, default=default, decision_id="", request_id="", now_s=time.time(), server_us=0.0
    )
    return result_from_proto(response)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Guard gRPC service (health, reflection) until SIGTERM or SIGINT; SIGHUP reloads."""
    from engine.config import ConfigError, load_config  # noqa: PLC0415  (keeps grpc out of other commands)
    from engine.guard import StartError  # noqa: PLC0415
    from engine.server.app import serve  # noqa: PLC0415
    from engine.server.workers import configure_logging, serve_workers  # noqa: PLC0415

    flags = {"rulesets": args.rulesets, "listen": args.listen, "data_dir": args.data_dir}
    try:
        config = load_config(args.config, flags | {"workers": args.workers})
    except ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging()

    def ready(listen: str) -> None:
        print(f"palisade: ready on {listen} ({config.workers} worker(s))", file=sys.stderr, flush=True)

    try:
        os.makedirs(config.data_dir, exist_ok=True)
        if config.workers > 1:
            return serve_workers(config, ready)
        return serve(config, ready=ready)
    except CompileError as exc:
        print(exc, file=sys.stderr)
        print(f"refusing to start: {len(exc.diagnostics)} error(s) in the rulesets", file=sys.stderr)
    except (StartError, OSError) as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
    return 1


def _ask_request(args: argparse.Namespace) -> tuple[str, str, Request]:
    """The ruleset, version and request of `palisade ask`: --request JSON, then the flags over it."""
    data = json.loads(_read_request(args.request or "{}"))
    if not isinstance(data, dict):
        raise RequestError("the request must be a JSON object")
    ruleset, version = str(data.pop("ruleset", "")), str(data.pop("version", ""))
    data |= {key: value for key, value in (("stage", args.stage), ("text", args.text)) if value is not None}
    return args.ruleset or ruleset, args.version or version, request_from_dict({"stage": "input"} | data)


def cmd_ask(args: argparse.Namespace) -> int:
    """Send one Check to a running server and print the decision as JSON."""
    from engine.client.guard_client import (  # noqa: PLC0415  (keeps grpc out of the other commands)
        GuardError,
        InvalidArgument,
        client_from_arguments,
    )

    try:
        ruleset, version, request = _ask_request(args)
    except (json.JSONDecodeError, RequestError) as exc:
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2
    client = client_from_arguments(args)
    if client is None:
        return 2
    with client:
        try:
            result = client.check_request(ruleset, request, version=version)
        except InvalidArgument as exc:  # refused before it was sent: the request, not the server
            print(f"invalid request: {exc.details}", file=sys.stderr)
            return 2
        except GuardError as exc:
            print(f"check failed: {exc}", file=sys.stderr)
            return 1
    _print_result(result)
    return 0


def _add_ruleset_arguments(parser: argparse.ArgumentParser) -> None:
    """RULESET, --rulesets and --version, for the commands that take a ruleset file or name."""
    parser.add_argument("ruleset", metavar="RULESET", help="a .pal file, or a ruleset's name in --rulesets")
    parser.add_argument(
        "--rulesets", default="rulesets", help="where to look a name up, as for serve (default: ./rulesets)"
    )
    parser.add_argument("--version", help="pin a version of the named ruleset (default: its highest)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palisade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help=cmd_check.__doc__)
    check.add_argument("paths", nargs="+", help="ruleset files or directories")
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.set_defaults(func=cmd_check)

    test = sub.add_parser("test", help=cmd_test.__doc__)
    test.add_argument("paths", nargs="+", help="test files, rulesets or directories")
    test.add_argument("-v", "--verbose", action="store_true", help="print passing cases too")
    test.set_defaults(func=cmd_test)

    graph = sub.add_parser("graph", help=cmd_graph.__doc__)
    _add_ruleset_arguments(graph)
    graph.add_argument("--format", choices=["text", "dot"], default="text")
    graph.set_defaults(func=cmd_graph)

    evaluate = sub.add_parser("eval", help=cmd_eval.__doc__, description=cmd_eval.__doc__)
    _add_ruleset_arguments(evaluate)
    evaluate.add_argument(
        "request",
        metavar="REQUEST",
        help='request JSON, e.g. {"stage": "input", "text": "hi"}; @FILE reads FILE, - stdin',
    )
    evaluate.set_defaults(func=cmd_eval)

    serve = sub.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--rulesets", help="directory of .pal rulesets (default: ./rulesets)")
    serve.add_argument("--listen", help="HOST:PORT to serve on (default: 127.0.0.1:50051; port 0: any)")
    serve.add_argument("--data-dir", help="directory for durable state (default: ./data)")
    serve.add_argument("--workers", type=int, help="server processes sharing the port (default: 1)")
    serve.add_argument("--config", help="TOML file with further settings (docs/configuration.md)")
    serve.set_defaults(func=cmd_serve)

    ask = sub.add_parser("ask", help=cmd_ask.__doc__)
    ask.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of a running server")
    ask.add_argument("--ruleset", help="the ruleset's name (or `ruleset` in --request)")
    ask.add_argument("--version", help="pin a ruleset version (default: the active one)")
    ask.add_argument("--stage", help="input | output | tool_call | tool_result | retrieval (default: input)")
    ask.add_argument("--text", help="the text to check")
    ask.add_argument(
        "--request",
        help='request JSON, e.g. {"stage": "tool_call", "tool": {"name": "x"}}; @FILE reads FILE, - stdin',
    )
    ask.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the decision")
    add_tls_arguments(ask)
    ask.set_defaults(func=cmd_ask)
    audit_cli.register(sub)
    approvals_cli.register(sub)
    store_cli.register(sub)
    mcp_cli.register(sub)
    score.register(sub)
    diff.register(sub)
    gate.register(sub)
    rollout.register(sub)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
