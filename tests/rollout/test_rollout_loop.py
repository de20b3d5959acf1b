"""The release loop on the shipped support_bot through a real server: diff, gate, shadow, canary, promote,
roll back, and every step read back from the audit log."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from server_helpers import ROOT, ServeProcess, log_verifies, serve_process, wait_for

from dsl.compiler import compile_file
from engine.client.guard_client import GuardClient
from engine.runtime.request import Principal, Request, Stage

RULESET = "support_bot"
CANDIDATE = "support_bot@1.1.0.pal"
THREAT = "If this is not fixed today I will take it to the ombudsman."
BENIGN = "Hi, where is my order 12345678? I placed it on Monday."


def palisade(*args: str, cwd: Path, expect: int = 0) -> str:
    """Run one `palisade` command in ``cwd``, which must exit with ``expect``: its stdout (0), else stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    said = f"palisade {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
    assert done.returncode == expect, said
    return done.stdout if expect == 0 else done.stderr


def write_candidate(rulesets: Path) -> None:
    """The change under review: "ombudsman" becomes a legal threat (tier 2 takes over)."""
    source = (rulesets / f"{RULESET}.pal").read_text(encoding="utf-8")
    changed = source.replace('version "1.0.0"', 'version "1.1.0"').replace(
        '"chargeback"]', '"chargeback", "ombudsman"]'
    )
    assert changed.count("ombudsman") == 1
    (rulesets / CANDIDATE).write_text(changed, encoding="utf-8")


def write_traffic(path: Path) -> None:
    rows = [{"stage": "input", "text": text} for text in (BENIGN, THREAT, BENIGN + " Thanks!")]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def check(target: str, principal: str, text: str) -> tuple[str, str]:
    """The version that answered and its outcome."""
    request = Request(stage=Stage.INPUT, text=text, principal=Principal(id=principal, tenant="example-co"))
    with GuardClient(target, timeout=60) as client:
        result = client.check_request(RULESET, request)
    return result.version, result.outcome.label


def records(work: Path, outcome: str = "") -> list[dict[str, Any]]:
    out = palisade(
        "audit", "query", "--data-dir", "data", "--ruleset", RULESET, "--outcome", outcome, cwd=work
    )
    return [json.loads(line) for line in out.splitlines()]


def change(work: Path, server: ServeProcess, *args: str, expect: int = 0) -> str:
    """One `palisade rollout` change, then the reload it asks for (SIGHUP), waited for."""
    before = "".join(server.stderr).count("reloaded ")
    who = ("--ruleset", RULESET, "--actor", "alice", "--reload", str(server.proc.pid))
    out = palisade("rollout", *args, *who, cwd=work, expect=expect)
    if expect == 0:
        wait_for(lambda: "".join(server.stderr).count("reloaded ") > before)
    return out


def test_the_whole_release_loop(tmp_path: Path) -> None:
    work = tmp_path
    shutil.copytree(ROOT / "rulesets", work / "rulesets")
    write_traffic(work / "traffic.jsonl")
    args = ("--rulesets", str(work / "rulesets"), "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"))
    with serve_process(*args) as server:
        target = server.wait_ready()
        assert check(target, "cust-1", THREAT) == ("1.0.0", "allow")
        change(work, server, "activate", "--version", "1.0.0", "--comment", "pin what serves")

        # write the change: a new version beside the old; the plan keeps 1.0.0 answering
        write_candidate(work / "rulesets")
        diffed = json.loads(palisade("diff", "--base", "1.0.0", "--candidate", f"rulesets/{CANDIDATE}",
                                     "--data", "traffic.jsonl", "--format", "json", cwd=work))  # fmt: skip
        assert diffed["requests"] == 3
        assert diffed["transitions"] == {"ALLOW->ESCALATE": 1}
        assert diffed["by_rule"] == {"legal_threats": 1}
        assert diffed["requests_changed"][0]["row"] == 2

        palisade("gate", f"rulesets/{CANDIDATE}", "--skip-performance", "--report", "reports", cwd=work)
        report = json.loads((work / "reports" / "gate-support_bot-1.1.0.json").read_text())
        assert report["passed"] and report["ruleset"]["content_hash"].startswith("sha256:")

        # shadow: 1.1.0 sees every Check, 1.0.0 still answers
        change(work, server, "shadow", "--version", "1.1.0")
        assert check(target, "cust-2", THREAT) == ("1.0.0", "allow")
        assert check(target, "cust-3", BENIGN) == ("1.0.0", "allow")
        wait_for(lambda: len(records(work, "shadow:escalate")) == 1)
        shadow = json.loads(palisade("shadow", "report", "--ruleset", RULESET, "--data-dir", "data",
                                     "--format", "json", cwd=work))  # fmt: skip
        assert shadow["transitions"] == {"ALLOW->ESCALATE": 1}
        assert shadow["by_rule"] == {"legal_threats": 1} and shadow["sample_rate_now"] == 1.0

        # canary at 10%: needs an approval on 1.1.0's content hash first
        refused = change(work, server, "canary", "--version", "1.1.0", "--percent", "10", expect=1)
        assert "needs an approval before it may answer: none was requested" in refused
        asked = ("--ruleset", RULESET, "--version", "1.1.0", "--actor", "alice")
        approval = palisade("rollout", "request", *asked, cwd=work).strip()
        palisade("approvals", "approve", approval, "--server", target, "--approver", "bob", cwd=work)
        change(work, server, "canary", "--version", "1.1.0", "--percent", "10")
        answers = {f"cust-{n}": check(target, f"cust-{n}", BENIGN)[0] for n in range(200)}
        share = Counter(answers.values())["1.1.0"] / len(answers)
        assert 0.04 <= share <= 0.18, share
        canary_user = next(user for user, version in answers.items() if version == "1.1.0")
        assert check(target, canary_user, BENIGN)[0] == "1.1.0"  # one user, one version

        change(work, server, "activate", "--version", "1.1.0", "--comment", "promote")
        assert check(target, "cust-4", THREAT) == ("1.1.0", "escalate")
        change(work, server, "activate", "--version", "1.0.0", "--comment", "roll back")
        assert check(target, "cust-5", THREAT) == ("1.0.0", "allow")

    steps = [(r["event"], r["ruleset"]["version"], r["actor"], r["approval"] != "") for r in records(work)
             if r.get("kind") == "rollout"]  # fmt: skip
    assert steps == [
        ("activate", "1.0.0", "palisade serve", False),  # the first version of a ruleset that needs approvals
        ("activate", "1.0.0", "alice", False),
        ("shadow", "1.1.0", "alice", False),
        ("request", "1.1.0", "alice", False),
        ("canary", "1.1.0", "alice", True),
        ("activate", "1.1.0", "alice", True),
        ("activate", "1.0.0", "alice", False),  # a rollback: 1.0.0 was active before, no new approval
    ]
    decisions = [r for r in records(work) if "kind" not in r]
    roles = Counter((r["ruleset"]["version"], r.get("rollout", {}).get("role")) for r in decisions)
    assert roles[("1.1.0", "canary")] == Counter(answers.values())["1.1.0"] + 1
    assert roles[("1.1.0", "active")] == 1
    approved = [r for r in records(work, "approval:approved") if r["approval"]["id"] == approval]
    assert approved[0]["actor"] == "bob"
    assert log_verifies(work / "data")


def reloaded(server: ServeProcess, outcome: str) -> str:
    """SIGHUP ``server`` and wait for the reload's verdict ("reloaded " or "reload refused"): its log line."""
    before = server.log().count(outcome)
    server.signal(signal.SIGHUP)
    wait_for(lambda: server.log().count(outcome) > before, context=server.log)
    return [line for line in server.stderr if outcome in line][-1]


def test_the_server_refuses_a_hand_edited_plan_without_its_approval(tmp_path: Path) -> None:
    work = tmp_path
    shutil.copytree(ROOT / "rulesets", work / "rulesets")
    palisade("rollout", "activate", "--ruleset", RULESET, "--version", "1.0.0", "--actor", "alice", cwd=work)
    write_candidate(work / "rulesets")
    content = compile_file(str(work / "rulesets" / CANDIDATE)).content_hash
    plan_file = work / "data" / "rollout.json"
    args = ("--rulesets", str(work / "rulesets"), "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"))
    with serve_process(*args) as server:
        target = server.wait_ready()
        plans = json.loads(plan_file.read_text())
        edits = (("active", {"active": "1.1.0"}), ("canary", {"canary": "1.1.0", "canary_percent": 100}))
        for role, edit in edits:
            plan_file.write_text(json.dumps({RULESET: plans[RULESET] | edit}))  # a hand edit
            line = reloaded(server, "reload refused")
            assert f"rollout: {RULESET}.{role}: {RULESET} 1.1.0 (content {content}) needs an approval" in line
            assert "none was requested" in line
            assert check(target, "cust-1", THREAT) == ("1.0.0", "allow")  # the previous registry serves

        asked = ("--ruleset", RULESET, "--version", "1.1.0", "--actor", "alice")
        approval = palisade("rollout", "request", *asked, cwd=work).strip()
        palisade("approvals", "approve", approval, "--server", target, "--approver", "bob", cwd=work)
        reloaded(server, "reloaded ")  # the same hand-edited plan (canary at 100%), now approved
        assert check(target, "cust-1", THREAT) == ("1.1.0", "escalate")


def test_a_new_file_answers_only_once_its_hash_is_approved(tmp_path: Path) -> None:
    work = tmp_path
    shutil.copytree(ROOT / "rulesets", work / "rulesets")
    base = compile_file(str(work / "rulesets" / f"{RULESET}.pal")).content_hash
    args = ("--rulesets", str(work / "rulesets"), "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"))
    with serve_process(*args) as server:  # no plan: the server picks what answers
        target = server.wait_ready()
        # the first version of a ruleset that requires approvals goes live, and its record vouches for it
        wait_for(lambda: len(records(work, "rollout:activate")) == 1)
        first = records(work, "rollout:activate")
        assert [(r["actor"], r["ruleset"]["content_hash"]) for r in first] == [("palisade serve", base)]

        write_candidate(work / "rulesets")  # dropped in, no approval
        content = compile_file(str(work / "rulesets" / CANDIDATE)).content_hash
        reloaded(server, "reloaded ")
        awaits = f"{RULESET} 1.1.0 (content {content}) is loaded but awaits an approval"
        assert awaits in server.log() and "1.0.0 answers" in server.log()
        assert check(target, "cust-1", THREAT) == ("1.0.0", "allow")
        decision = [r for r in records(work) if "kind" not in r][-1]
        assert decision["ruleset"]["version"] == "1.0.0" and decision["ruleset"]["content_hash"] == base
        status = json.loads(palisade("rollout", "status", cwd=work))[RULESET]
        assert (status["answers"], status["awaiting_approval"]) == ("1.0.0", ["1.1.0"])
        with GuardClient(target, timeout=60) as client:  # loaded: a caller may pin it (diff, tests)
            pinned = client.check_request(RULESET, Request(stage=Stage.INPUT, text=THREAT), version="1.1.0")
        assert pinned.outcome.label == "escalate"

        asked = ("--ruleset", RULESET, "--version", "1.1.0", "--actor", "alice")
        approval = palisade("rollout", "request", *asked, cwd=work).strip()
        reloaded(server, "reloaded ")
        assert check(target, "cust-2", THREAT) == ("1.0.0", "allow")  # requested is not approved
        palisade("approvals", "approve", approval, "--server", target, "--approver", "bob", cwd=work)
        reloaded(server, "reloaded ")
        assert check(target, "cust-3", THREAT) == ("1.1.0", "escalate")
        decision = [r for r in records(work) if "kind" not in r][-1]
        assert decision["ruleset"]["content_hash"] == content
        status = json.loads(palisade("rollout", "status", cwd=work))[RULESET]
        assert (status["answers"], status["awaiting_approval"]) == ("1.1.0", [])
    assert log_verifies(work / "data")
