"""`palisade bench`: the command line of the latency-budget benchmark (the work is in runner.py)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.client.tls import add_tls_arguments


def cmd_bench(args: argparse.Namespace) -> int:
    """Drive each ruleset's scenario through the real server at a fixed rate; gate p95 on its budget."""
    from engine.cli.bench import runner  # noqa: PLC0415 (keeps grpc and Faker out of other commands)

    return runner.main(args)


def register(sub: Any) -> None:
    """Add `bench` to the `palisade` subcommands (``sub`` is argparse's subparsers object)."""
    bench = sub.add_parser("bench", help=cmd_bench.__doc__, description=cmd_bench.__doc__)
    bench.add_argument("--rulesets", required=True, help="directory of .pal rulesets (every one is benched)")
    bench.add_argument("--target", help="HOST:PORT of a running server (default: start `palisade serve`)")
    bench.add_argument("--rate", type=float, default=200.0, help="Checks per second (open loop)")
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per measured repetition")
    bench.add_argument("--warmup", type=float, default=3.0, help="seconds first, not counted")
    bench.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    bench.add_argument(
        "--scenario",
        action="append",
        help="scenario file (TOML or JSON; repeatable); only their rulesets are benched "
        "(default: NAME.scenario.toml beside each NAME.pal)",
    )
    bench.add_argument("--json", help="also write the report as JSON to this file")
    bench.add_argument("--processes", type=int, default=2, help="load-generator processes")
    bench.add_argument("--workers", type=int, default=1, help="server processes (when it starts one)")
    bench.add_argument("--config", help="TOML settings for the server it starts (see `palisade serve`)")
    add_tls_arguments(bench)  # for a server that speaks TLS: --target's, or one whose --config sets [tls]
    bench.set_defaults(func=cmd_bench)
