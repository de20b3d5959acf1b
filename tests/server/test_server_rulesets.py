"""The real rulesets in rulesets/, served over gRPC, give the decisions their policy tests expect."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import ROOT, config, running

from dsl.compiler import compile_file
from dsl.diagnostics import CompileError
from engine.cli import policytest
from engine.client.guard_client import GuardClient
from engine.runtime.registry import Registry, source_files
from engine.runtime.request import Request, request_from_dict

REAL_RULESETS = ROOT / "rulesets"
REQUEST_KEYS = frozenset(f.name for f in dataclasses.fields(Request))


def _loadable() -> str:
    """Why the real rulesets cannot be served yet, or "" when they can."""
    if not any(source_files(str(REAL_RULESETS))):
        return "rulesets/ has no ruleset yet"
    try:
        Registry.load(str(REAL_RULESETS))
    except CompileError:
        return "rulesets/ does not compile (`palisade check rulesets` reports why)"
    return ""


SKIP = _loadable() if REAL_RULESETS.is_dir() else "rulesets/ does not exist"
pytestmark = pytest.mark.skipif(bool(SKIP), reason=SKIP)


def cases() -> list[Any]:
    """(ruleset name, version, case) for every policy test beside a ruleset in rulesets/."""
    found = []
    for path in policytest.test_files(str(REAL_RULESETS)) if not SKIP else ():
        graph = compile_file(path.removesuffix(policytest.TEST_SUFFIX) + ".pal")
        with open(path, "rb") as handle:
            for case in tomllib.load(handle).get("test", []):
                label = f"{graph.name}: {case.get('name', '?')}"
                found.append(pytest.param(graph.name, graph.version, case, id=label))
    return found


@pytest.fixture(scope="module")
def real_client() -> Iterator[GuardClient]:
    # the policy tests' pseudonym key, so that `fallback pseudonymize` writes what they expect
    key = policytest.TEST_SETTINGS.pseudonym_key.decode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALISADE_TEST_PSEUDONYM_KEY", key)
        cfg = config(rulesets=str(REAL_RULESETS), limits={}, pseudonym_key_env="PALISADE_TEST_PSEUDONYM_KEY")
        with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=30) as guard:
            yield guard


@pytest.mark.parametrize(("ruleset", "version", "case"), cases())
def test_each_policy_test_holds_over_grpc(
    real_client: GuardClient, ruleset: str, version: str, case: dict[str, Any]
) -> None:
    request = request_from_dict({k: v for k, v in case.items() if k in REQUEST_KEYS})
    result = real_client.check_request(ruleset, request, version=version)
    got = {
        "expect": result.outcome.label,
        "rules": sorted(result.deciding_rules),
        "redacted": result.redacted,
        "reasons": sorted(result.reasons),
        "reply": result.fallback.reply if result.fallback else None,
        "model": result.fallback.model if result.fallback else None,
        "queue": result.escalation.queue if result.escalation else None,
    }
    wanted = {k: sorted(v) if isinstance(v, list) else v for k, v in case.items() if k in got}
    wanted["expect"] = str(case["expect"]).lower()
    assert {k: got[k] for k in wanted} == wanted


def test_every_real_ruleset_is_served(real_client: GuardClient) -> None:
    for path in source_files(str(REAL_RULESETS)):
        try:
            graph = compile_file(path)
        except CompileError:
            continue  # a library: it has no graph of its own
        result = real_client.check(ruleset=graph.name, version=graph.version, text="hello")
        assert (result.ruleset, result.version, result.content_hash) == (
            graph.name,
            graph.version,
            graph.content_hash,
        )
