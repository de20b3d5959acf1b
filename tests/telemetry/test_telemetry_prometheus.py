"""A real Prometheus scrapes a real `palisade serve` (two workers) and evaluates deploy/prometheus's rules;
label values stay bounded; the Grafana dashboard's queries run against what is really exposed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import ROOT, wait_for
from telemetry_helpers import RULESET, RULESETS, free_port, scrape, served, traffic, write_config

from detectors.specs import SPECS
from dsl.types import Outcome, Stage
from engine.protocol.wire import apb, pb
from engine.runtime.registry import compile_rulesets

RULES = ROOT / "deploy" / "prometheus" / "palisade.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "palisade.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "palisade.json"
MISSING = "Prometheus is not installed: apt-get install -y prometheus (.ci/run does)"
SELECTOR = f'{{ruleset="{RULESET}"}}'
APPROVAL_EVENTS = {"opened", "approved", "denied", "expired", "cancelled", "used", "replay"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, MISSING
    return path


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run(
            [_tool("promtool"), *command], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def palisade() -> Iterator[tuple[str, str, list[str]]]:
    """`palisade serve` with two workers and [metrics] on, after a little traffic: yields its gRPC and
    metrics addresses and the unique strings (request ids, principals, texts) that traffic carried."""
    folder = Path(tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with served(write_config(folder, workers=2, metrics=True)) as (target, metrics):
        unique = traffic(target, 30)
        wait_for(lambda: _checks_counted(scrape(metrics)) >= 30)  # the workers flush every 0.25 s
        yield target, metrics, unique


def _checks_counted(text: str) -> float:
    """The Checks that every worker's metrics count, together."""
    families = text_string_to_metric_families(text)
    counts = [s.value for f in families for s in f.samples if s.name == "palisade_decisions_total"]
    return sum(counts)


def _allowed_values() -> dict[str, set[str]]:
    graphs = compile_rulesets(str(RULESETS)).values()
    methods = {
        m.name for s in (pb, apb) for svc in s.DESCRIPTOR.services_by_name.values() for m in svc.methods
    }
    return {
        "ruleset": {g.name for g in graphs},
        "version": {g.version for g in graphs},
        "content_hash": {g.content_hash for g in graphs},
        "rule": {r.name for g in graphs for r in g.rules} | {"(evaluator)", "(default)"},
        "stage": {s.value for s in Stage},
        "outcome": {o.label for o in Outcome},
        "detector": set(SPECS),
        "queue": {arm.action.queue for g in graphs for r in g.rules for arm in r.arms if arm.action.queue},
        "event": APPROVAL_EVENTS,
        "method": methods,
        "code": {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND"}
        | {"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED"}
        | {"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
        | {"400", "404", "413", "500", "502"},  # what an HTTP front door answers a request it cannot check
        "front_door": {"envoy", "litellm"},
    }


def test_every_label_value_comes_from_a_bounded_set(palisade: tuple[str, str, list[str]]) -> None:
    _, metrics, unique = palisade
    text = scrape(metrics)
    allowed = _allowed_values()
    seen = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label == "le":
                    float(value)  # a bucket bound
                    continue
                assert value in allowed[label], f"{sample.name}: {label}={value!r} is not a bounded value"
                seen += 1
    assert seen > 100
    assert not [u for u in unique if u in text]  # no request id, principal or text, anywhere


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


@pytest.fixture(scope="module")
def prometheus(
    palisade: tuple[str, str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus scraping the server every second and evaluating deploy/prometheus's rules."""
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        f"scrape_configs: [{{job_name: palisade, static_configs: [{{targets: ['{palisade[1]}']}}]}}]\n",
        encoding="utf-8",
    )
    listen = f"127.0.0.1:{free_port()}"
    command = [
        _tool("prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={listen}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://{listen}"
        wait_for(lambda: _ready(base))
        wait_for(lambda: _recorded(base, palisade[0]), attempts=100)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _recorded(base: str, target: str) -> bool:
    """Whether the recording rules have a value for the ruleset yet; sends a little traffic meanwhile,
    so that rates see two samples."""
    traffic(target, 3)
    names = ["palisade:check_p95_over_budget:ratio_5m", "palisade:checks_over_budget:ratio_rate5m"]
    return all(_query(base, name + SELECTOR)["data"]["result"] for name in names)


def test_prometheus_evaluates_the_recording_rules_on_live_data(prometheus: str) -> None:
    selector = SELECTOR
    ratio = float(
        _query(prometheus, "palisade:check_p95_over_budget:ratio_5m" + selector)["data"]["result"][0][
            "value"
        ][1]
    )
    assert 0 < ratio < 1  # these Checks take well under the 50 ms budget
    availability = _query(prometheus, "palisade:check_errors:ratio_rate5m")["data"]["result"]
    assert float(availability[0]["value"][1]) == 0  # NOT_FOUND is the caller's error, not a failure
    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as response:
        groups = json.load(response)["data"]["groups"]
    health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert len(health) == 18 and set(health.values()) == {"ok"}, health


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_asks_for_metrics_the_server_exposes_and_prometheus_answers_it(
    palisade: tuple[str, str, list[str]], prometheus: str
) -> None:
    exposed = {s.name for f in text_string_to_metric_families(scrape(palisade[1])) for s in f.samples}
    recorded = set(re.findall(r"record: (\S+)", RULES.read_text(encoding="utf-8")))
    queries = _dashboard_queries()
    asked = {name for q in queries for name in re.findall(r"\bpalisade[_:][\w:]+", q)}
    assert asked <= exposed | recorded, asked - exposed - recorded
    answered = 0
    for query in queries:
        answer = _query(prometheus, query.replace("$__rate_interval", "1m").replace('"$ruleset"', '".*"'))
        assert answer["status"] == "success", (query, answer)
        answered += bool(answer["data"]["result"])
    assert answered >= len(queries) * 3 // 4  # most show live data after a little traffic
