"""Every fenced block in the README and docs/ runs as shown: rulesets, requests, commands, examples."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml  # type: ignore[import-untyped]
from mcp_client import list_tools
from server_helpers import ServeProcess, wait_for

from dsl.compiler import run as compile_file
from engine.approvals.approvers import Approvers
from engine.cli.bench.workload import generate, load_scenario
from engine.cli.main import build_parser
from engine.client.guard_client import GuardClient, GuardError
from engine.config import load_config
from engine.http.config import HttpConfig
from engine.runtime.registry import Registry
from engine.runtime.request import request_from_dict

ROOT = Path(__file__).resolve().parents[2]
# What a newcomer reads: the README, docs/, and the scenario format (not benchmarks' result reports).
DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
DOCS += ["benchmarks/scenarios/README.md"]
PALISADE = [sys.executable, "-m", "engine.cli.main"]  # the console script may be stale in a venv
DOCUMENTED_ADDRESS = "127.0.0.1:50051"  # `palisade serve`'s default; swapped for the test server's
OUTCOMES = {"ALLOW", "BLOCK", "FALLBACK", "ESCALATE"}
TIMEOUT_S = 180
# Commands that cannot run here, with why. Keyed by the command, so that moving a block keeps it.
SKIP = {
    "make serve": "installs into .venv and serves on port 50051 until stopped; the server fixture "
    "runs the `palisade serve` it ends in",
    "make test": "runs the whole suite, this test included: it would recurse",
}
FENCE = re.compile(r"^( *)```(\S*)\s*$")
DIAGNOSTIC = re.compile(r"^(?P<file>[\w./-]+\.pal):(?P<line>\d+):\d+: (?:error|warning)\[[PW]\d+\]: ")
SOURCE_LINE = re.compile(r"^ *(?P<number>\d+) \| (?P<text>.*)$", re.MULTILINE)
DECLARATION = re.compile(r"^(?:ruleset (\w+) version |library (\w+) \{)", re.MULTILINE)
# Members that a record holds only sometimes (docs/audit.md says when).
OPTIONAL_MEMBERS = {"excerpt", "models"}


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its document, the line of its opening fence, info string and text."""

    doc: str
    line: int
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks_of(doc: str) -> list[Block]:
    """The fenced blocks of ``doc``, indented ones (in list items) with their indent removed."""
    lines, found, at = (ROOT / doc).read_text(encoding="utf-8").splitlines(), [], 0
    while at < len(lines):
        opening = FENCE.match(lines[at])
        if opening is None:
            at += 1
            continue
        end = next((i for i in range(at + 1, len(lines)) if lines[i].strip() == "```"), len(lines))
        indent = len(opening.group(1))
        text = "".join(line[indent:] + "\n" for line in lines[at + 1 : end])
        found.append(Block(doc, at + 1, opening.group(2), text))
        at = end + 1
    return found


BLOCKS = [block for doc in DOCS for block in blocks_of(doc)]


def kind_of(block: Block) -> str:
    """What the block is, by its info string and content; "unclassified" when nothing fits."""
    if block.info in {"sh", "bash", "console", "shell"}:
        return "commands"
    if block.info == "python":
        return "python"
    if block.info == "json":
        return _json_kind(_json(block.text))
    if block.info == "toml":
        return _toml_kind(tomllib.loads(block.text))
    if block.info == "yaml" and "generic_guardrail_api" in block.text:
        return "litellm config"
    if block.info in {"", "pal"} and DECLARATION.search(block.text):
        return "ruleset"
    if block.info == "" and DIAGNOSTIC.match(block.text):
        return "diagnostic"
    if block.info == "" and block.text.startswith("palisade "):
        return "synopsis"
    return "unclassified"


def _json(text: str) -> Any:
    """A JSON block's value; a member shown alone (`"name": {...}`) reads as an object of one member."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads("{" + text + "}")


def _json_kind(value: Any) -> str:
    if not isinstance(value, dict):
        return "unclassified"
    if "prev_hash" in value:
        return "record"
    if "mcpServers" in value:
        return "mcp client config"
    if "stage" in value:
        return "request"
    return "excerpt" if set(value) == {"excerpt"} else "unclassified"


def _toml_kind(data: dict[str, Any]) -> str:
    kinds = {"test": "policy tests", "approvers": "approvers", "mix": "scenario", "listen": "config"}
    return next((kind for key, kind in kinds.items() if key in data), "unclassified")


@dataclass
class Server:
    """The one `palisade serve` of this module, run in ``home`` as the docs run it in the repository:
    `rulesets` (the shipped ones) and `data/` there."""

    process: ServeProcess
    address: str
    home: Path

    def client(self) -> GuardClient:
        return GuardClient(self.address, timeout=60)

    @cached_property
    def decision_id(self) -> str:
        """The id of a decision in the server's audit log (a BLOCK of support_bot)."""
        with self.client() as guard:
            return guard.check(ruleset="support_bot", text="my SSN is 123-45-6789").decision_id

    def new_approval(self) -> str:
        """The id of a fresh pending approval in queue sre-oncall."""
        call = {"name": "shell.exec", "arguments": {"command": "make build"}}
        principal = {"id": f"docs-reader-{os.urandom(4).hex()}", "roles": ["dev"]}
        with self.client() as guard:
            result = guard.check(ruleset="coding_agent", stage="tool_call", tool=call, principal=principal)
        assert result.escalation is not None, result
        return result.escalation.approval_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("served")
    (home / "rulesets").symlink_to(ROOT / "rulesets")
    process = ServeProcess("--listen", "127.0.0.1:0", cwd=home)
    try:
        yield Server(process, process.wait_ready(), home)
    finally:
        process.close()


@dataclass
class Context:
    """What a block's check may use: a folder of its own and, on demand, the shared server."""

    block: Block
    folder: Path
    request: pytest.FixtureRequest

    def server(self) -> Server:
        served: Server = self.request.getfixturevalue("server")
        return served


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def ran(result: subprocess.CompletedProcess[str], where: str, status: int = 0) -> str:
    """``result``'s stdout, once it exited with ``status``."""
    shown = shlex.join(str(a) for a in result.args)
    output = f"{result.stdout}\n{result.stderr}".strip()
    assert result.returncode == status, f"{where}: {shown} exited {result.returncode}:\n{output}"
    return result.stdout


# --- rulesets, policy tests, diagnostics, synopses


def write_ruleset(text: str, folder: Path) -> Path:
    """``text`` as NAME.pal in ``folder``, beside the shipped library folder that imports name."""
    if not (folder / "lib").exists():
        (folder / "lib").symlink_to(ROOT / "rulesets" / "lib")
    declared = DECLARATION.search(text)
    assert declared is not None
    path = folder / f"{declared.group(1) or declared.group(2)}.pal"
    path.write_text(text, encoding="utf-8")
    return path


def check_ruleset(ctx: Context) -> None:
    diagnostics = compile_file(str(write_ruleset(ctx.block.text, ctx.folder))).diagnostics
    errors = [f"{d.span.line}:{d.span.column} {d.code} {d.message}" for d in diagnostics if d.is_error]
    assert errors == [], f"{ctx.block.where}: the ruleset does not compile"


def check_policy_tests(ctx: Context) -> None:
    """Policy tests run by `palisade test` against the ruleset shown above them in the same document."""
    shown = [b for b in blocks_of(ctx.block.doc) if b.line < ctx.block.line and kind_of(b) == "ruleset"]
    assert shown, f"{ctx.block.where}: no ruleset above these tests to run them on"
    ruleset = write_ruleset(shown[-1].text, ctx.folder)
    tests = ruleset.with_suffix(".tests.toml")
    tests.write_text(ctx.block.text, encoding="utf-8")
    ran(run([*PALISADE, "test", "-v", tests.name], ctx.folder), ctx.block.where)


def check_diagnostic(ctx: Context) -> None:
    """`palisade check` prints the shown diagnostic for the line shown, set in a rule on tool_call
    (where every request field exists) at the line number shown."""
    head, shown = DIAGNOSTIC.match(ctx.block.text), SOURCE_LINE.search(ctx.block.text)
    assert head is not None and shown is not None and int(head["line"]) == int(shown["number"]) > 2
    padding = ["    #"] * (int(shown["number"]) - 3)
    source = ['ruleset shown version "1.0.0" {', "  rule shown on tool_call {", *padding, shown["text"]]
    (ctx.folder / head["file"]).write_text("\n".join([*source, "  }", "}", ""]), encoding="utf-8")
    checked = run([*PALISADE, "check", head["file"]], ctx.folder)
    ran(checked, ctx.block.where, status=1)
    assert _squeezed(ctx.block.text) in _squeezed(checked.stderr), checked.stderr


def _squeezed(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def check_synopsis(ctx: Context) -> None:
    """Each command in a synopsis exists, and takes every flag the synopsis gives it."""
    for line in _synopsis_commands(ctx.block.text):
        names = re.match(r"palisade((?: [a-z][\w-]*)+)", line)
        assert names is not None, line
        parser = _subparser(names.group(1).split())
        accepted = {option for action in parser._actions for option in action.option_strings}
        flags = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line[names.end() :]))
        assert flags <= accepted, f"{ctx.block.where}: {names.group(0)} takes no {flags - accepted}"


def _synopsis_commands(text: str) -> list[str]:
    """The synopsis's commands, each with its continuation lines joined."""
    commands: list[str] = []
    for line in text.splitlines():
        if line.startswith("palisade "):
            commands.append(line)
        elif line.strip() and commands:
            commands[-1] += " " + line.strip()
    return commands


def _subparser(names: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


# --- JSON and TOML: requests, record examples, config files, scenarios


def check_request(ctx: Context) -> None:
    """A Check request decodes; one that names its ruleset is decided by it (`palisade eval`)."""
    data = _json(ctx.block.text)
    named = {key: data.pop(key) for key in ("ruleset", "version") if key in data}
    request_from_dict(data)
    if "ruleset" in named:
        (ctx.folder / "request.json").write_text(json.dumps(data), encoding="utf-8")
        pinned = ["--version", named["version"]] if "version" in named else []
        command = [*PALISADE, "eval", named["ruleset"], *pinned, "@request.json"]
        assert json.loads(ran(run(command, ctx.folder), ctx.block.where))["outcome"].upper() in OUTCOMES


def check_record(ctx: Context) -> None:
    """An audit record shown has the members, nested too, of a real record of the server."""
    server = ctx.server()
    shown = run([*PALISADE, "audit", "show", server.decision_id], server.home)
    real = json.loads(ran(shown, ctx.block.where))
    assert _differences(_json(ctx.block.text), real) == [], f"{ctx.block.where}: not a record's shape"


def check_excerpt(ctx: Context) -> None:
    """A record's excerpt shown has the shape, and the sources, of a real masked excerpt."""
    text = 'ruleset excerpts version "1.0.0" {\n  audit excerpts 200\n}\n'
    evaluator = Registry.load(str(write_ruleset(text, ctx.folder))).get("excerpts")
    assert evaluator.excerpter is not None
    message = {"role": "user", "content": "mail me at jane.doe@example.com or call 212-555-0134"}
    tool = {"name": "kv.put", "arguments": {"key": "AKIAABCDEFGHIJKLMNOP"}}
    request = request_from_dict({"stage": "tool_call", "messages": [message], "tool": tool})
    real = evaluator.excerpter.excerpt(request).data()
    shown = _json(ctx.block.text)["excerpt"]
    assert _differences(shown, real) == [], f"{ctx.block.where}: not an excerpt's shape"
    assert [p["source"] for p in shown["parts"]] == [p["source"] for p in real["parts"]], real


def _differences(shown: Any, real: Any, path: str = "") -> list[str]:
    """Members that one of two JSON values has and the other lacks (lists: their first items)."""
    if isinstance(shown, dict) and isinstance(real, dict):
        odd = [f"{path}.{key}" for key in sorted((shown.keys() ^ real.keys()) - OPTIONAL_MEMBERS)]
        both = sorted(shown.keys() & real.keys())
        return odd + [d for key in both for d in _differences(shown[key], real[key], f"{path}.{key}")]
    if isinstance(shown, list) and isinstance(real, list) and shown and real:
        return _differences(shown[0], real[0], f"{path}[0]")
    return []


def check_config(ctx: Context) -> None:
    path = ctx.folder / "serve.toml"
    path.write_text(ctx.block.text, encoding="utf-8")
    load_config(str(path))


def check_approvers(ctx: Context) -> None:
    path = ctx.folder / "approvers.toml"
    path.write_text(ctx.block.text, encoding="utf-8")
    assert Approvers.load(path).by_digest


def check_scenario(ctx: Context) -> None:
    """A bench scenario loads and draws requests that decode, for a ruleset that is shipped."""
    path = ctx.folder / "scenario.toml"
    path.write_text(ctx.block.text, encoding="utf-8")
    scenario = load_scenario(path)
    assert (ROOT / "rulesets" / f"{scenario.ruleset}.pal").exists(), scenario.ruleset
    assert len(generate(scenario, 20).requests) == 20


def check_mcp_client_config(ctx: Context) -> None:
    """Each server of an MCP client's config starts as the client would start it (`palisade` as
    this checkout's), and lists its tools through the proxy to the SDK's client."""
    (ctx.folder / "rulesets").symlink_to(ROOT / "rulesets")
    for entry in _json(ctx.block.text)["mcpServers"].values():
        assert entry["command"] == "palisade", entry
        tools = anyio.run(list_tools, [*PALISADE, *entry["args"]], ctx.folder, entry.get("env", {}))
        assert tools, f"no tools listed through {entry['args']}"


def check_litellm_config(ctx: Context) -> None:
    """Each Palisade guardrail of a LiteLLM config (tests/litellm_api runs this shape in a real
    LiteLLM) calls the guardrail API's default address and names a shipped ruleset."""
    guardrails = yaml.safe_load(ctx.block.text)["guardrails"]
    for guardrail in guardrails:
        params = guardrail["litellm_params"]
        assert params["guardrail"] == "generic_guardrail_api"
        assert params["api_base"] == f"http://{HttpConfig().listen}"
        assert set(params["mode"]) <= {"pre_call", "post_call", "during_call"}
        ruleset = params["additional_provider_specific_params"]["ruleset"]
        assert (ROOT / "rulesets" / f"{ruleset}.pal").exists(), ruleset


# --- commands and Python


def check_commands(ctx: Context) -> None:
    """Each command runs (`palisade` in a folder of its own, or against the server) but SKIP's; a
    block of nothing but SKIP's is skipped with their reasons."""
    commands = _commands(ctx.block.text)
    runnable = [command for command in commands if shlex.join(command[:2]) not in SKIP]
    if not runnable:
        pytest.skip("; ".join(SKIP[shlex.join(command[:2])] for command in commands))
    filled = _placeholders(ctx, ctx.block.text)
    for command in runnable:
        run_command(ctx, [filled.get(word, word) for word in command])


def _commands(text: str) -> list[list[str]]:
    commands = [shlex.split(line, comments=True) for line in text.splitlines()]
    for command in commands:
        assert not {"|", ">", ">>", "<", "&&", ";", "&"} & set(command), f"no shell here: {command}"
    return [command for command in commands if command]


def _placeholders(ctx: Context, text: str) -> dict[str, str]:
    """Real values for the placeholders a block names: a decision and a pending approval."""
    filled: dict[str, str] = {}
    if "DECISION_ID" in text:
        filled["DECISION_ID"] = ctx.server().decision_id
    if "APPROVAL_ID" in text:
        filled["APPROVAL_ID"] = ctx.server().new_approval()
    return filled


def run_command(ctx: Context, command: list[str]) -> None:
    if command[0] in {"palisade", ".venv/bin/palisade"}:
        run_palisade(ctx, command[1:])
    elif command[0] == "pkill":
        send_signal(ctx, command[1:])
    else:
        pytest.fail(f"{ctx.block.where}: no way to run {command[0]} here")


def run_palisade(ctx: Context, args: list[str]) -> None:
    """`palisade ARGS`: those that need the server (ask, approvals, audit of its log) in its folder,
    aimed at it; the others in the block's own folder."""
    cwd = _workdir(ctx.folder)
    if args[0] in {"ask", "audit"} or (args[0] == "approvals" and args[1] != "token"):
        server = ctx.server()
        cwd, args = server.home, [word.replace(DOCUMENTED_ADDRESS, server.address) for word in args]
        if args[0] in {"ask", "approvals"} and "--server" not in args:
            args += ["--server", server.address]
        _prepare(args, server.home)
    printed = ran(run([*PALISADE, *args], cwd), ctx.block.where)
    if args[0] in {"ask", "eval"}:
        assert json.loads(printed)["outcome"].upper() in OUTCOMES
    if args[:2] in (["approvals", "approve"], ["approvals", "deny"]):
        assert json.loads(printed)["state"] in {"approved", "denied"}


def _prepare(args: list[str], home: Path) -> None:
    """The files that docs/audit.md tells a third party to make first: a copy of the log
    (`sqlite3 audit.db ".backup copy.db"`) and the public key (`palisade audit pubkey`)."""
    if "copy.db" in args:
        ran(run([sys.executable, "-c", BACKUP], home), "copying the log")
    if "palisade.pub" in args:
        key = ran(run([*PALISADE, "audit", "pubkey"], home), "palisade audit pubkey")
        (home / "palisade.pub").write_text(key, encoding="utf-8")


BACKUP = "import sqlite3; sqlite3.connect('data/audit/audit.db').backup(sqlite3.connect('copy.db'))"


def _workdir(folder: Path) -> Path:
    """``folder``, with the shipped rulesets linked in as the docs' `rulesets/`."""
    if not (folder / "rulesets").exists():
        (folder / "rulesets").symlink_to(ROOT / "rulesets")
    return folder


def send_signal(ctx: Context, args: list[str]) -> None:
    """`pkill -HUP -f PATTERN` reloads the server. pkill would signal every match on this machine,
    so the signal goes to the test's own server; the pattern must match how `make serve` starts one."""
    assert args[0] == "-HUP" and args[-1] in (ROOT / "Makefile").read_text(encoding="utf-8"), args
    server = ctx.server()
    seen = len(server.process.stderr)
    server.process.signal(signal.SIGHUP)
    wait_for(lambda: any("reloaded" in line for line in server.process.stderr[seen:]))


def check_python(ctx: Context) -> None:
    """Run the block in a folder of its own; one that talks to a server gets the test's, and one that
    waits for an approval gets an approver that approves what is pending."""
    code, waits = ctx.block.text, "wait_for_approval" in ctx.block.text
    server = ctx.server() if DOCUMENTED_ADDRESS in code else None
    if server is not None:
        code = code.replace(DOCUMENTED_ADDRESS, server.address)
    with approving(server) if waits and server is not None else nullcontext():
        printed = ran(run([sys.executable, "-c", code], _workdir(ctx.folder)), ctx.block.where)
    if "outcome.name" in code:  # it prints the outcome first
        assert printed.split()[0] in ({"ALLOW"} if waits else OUTCOMES), printed


@contextmanager
def approving(server: Server) -> Iterator[None]:
    """A human at the approvals queue, meanwhile: every pending approval is approved."""
    done = threading.Event()

    def approve() -> None:
        with server.client() as guard:
            while not done.wait(0.2):
                for pending in guard.list_approvals(state="pending"):
                    with suppress(GuardError):  # answered meanwhile
                        guard.resolve_approval(pending.id, approve=True, approver="docs-test")

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


CHECKS: dict[str, Callable[[Context], None]] = {
    "ruleset": check_ruleset,
    "policy tests": check_policy_tests,
    "diagnostic": check_diagnostic,
    "synopsis": check_synopsis,
    "request": check_request,
    "record": check_record,
    "excerpt": check_excerpt,
    "config": check_config,
    "approvers": check_approvers,
    "mcp client config": check_mcp_client_config,
    "litellm config": check_litellm_config,
    "scenario": check_scenario,
    "commands": check_commands,
    "python": check_python,
}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_the_block_runs_as_shown(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    kind = kind_of(block)
    if kind not in CHECKS:
        pytest.fail(f"unclassified block at {block.where}: add a check for it, or a SKIP entry")
    CHECKS[kind](Context(block, tmp_path, request))


def test_every_skip_names_a_documented_command() -> None:
    documented = {shlex.join(c[:2]) for b in BLOCKS if kind_of(b) == "commands" for c in _commands(b.text)}
    assert set(SKIP) <= documented
