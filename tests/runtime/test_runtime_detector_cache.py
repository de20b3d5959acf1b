"""The cross-request detector cache: LRU in bytes, thread safety, and a chat that pays only for new turns."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from detectors.base import DetectorResult, Finding
from detectors.specs import DetectorSettings
from dsl.compiler import compile_source
from engine.runtime.detector_cache import CachedScan, DetectorCache, detector_key, entry_bytes, text_key
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import request_from_dict


def result(*types: str) -> DetectorResult:
    return DetectorResult(tuple(Finding(t, 0, 1) for t in types))


def test_lru_drops_the_least_recently_used_within_the_byte_budget() -> None:
    one = result("A")
    cache = DetectorCache(max_bytes=3 * entry_bytes(one))
    keys = [text_key("d", str(i)) for i in range(4)]
    for key in keys[:3]:
        cache.put(key, one)
    assert cache.get(keys[0]) is one  # now the most recently used
    cache.put(keys[3], one)
    assert cache.get(keys[1]) is None
    assert all(cache.get(k) is one for k in (keys[0], keys[2], keys[3]))
    stats = cache.stats()
    assert stats.entries == 3 and stats.bytes <= stats.max_bytes
    assert (stats.hits, stats.misses) == (4, 1)


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = DetectorCache(max_bytes=10)
    cache.put(text_key("d", "x"), result("A"))
    assert cache.stats().entries == 0


def test_keys_depend_on_detector_params_and_text() -> None:
    a = detector_key("pii", {"entities": ["CREDIT_CARD"], "min_score": 0.5})
    b = detector_key("pii", {"min_score": 0.5, "entities": ["CREDIT_CARD"]})
    c = detector_key("pii", {"entities": ["CREDIT_CARD"], "min_score": 0.6})
    assert a == b != c
    assert text_key(a, "x") != text_key(c, "x") and text_key(a, "x") != text_key(a, "y")


def test_concurrent_use_keeps_the_counts_and_the_budget() -> None:
    cache = DetectorCache(max_bytes=50 * entry_bytes(result("A")))

    def work(seed: int) -> None:
        for i in range(500):
            key = text_key("d", str((seed * 7 + i) % 120))
            if cache.get(key) is None:
                cache.put(key, result("A"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    assert stats.hits + stats.misses == 8 * 500
    assert stats.bytes <= stats.max_bytes and stats.entries <= 50


class Counting:
    """A detector that reports each "4111" and counts the texts it scanned."""

    def __init__(self) -> None:
        self.scanned: list[str] = []

    def detect(self, text: str) -> DetectorResult:
        self.scanned.append(text)
        start = text.find("4111 1111")
        return DetectorResult((Finding("CARD", start, start + 9),) if start >= 0 else ())


def test_parts_are_scanned_once_and_offsets_shifted() -> None:
    detector = Counting()
    scan = CachedScan(detector.detect, "k", DetectorCache(1 << 20))
    parts = ["hello", "my card 4111 1111", "thanks"]
    found = scan.parts(parts, "parts")
    whole = "\n".join(parts)
    assert [whole[f.start : f.end] for f in found.findings] == ["4111 1111"]
    again = CachedScan(detector.detect, "k", scan.cache)
    again.parts([*parts, "one more"], "parts")
    assert detector.scanned[3:] == ["one more"]
    assert (again.stats.hits, again.stats.misses) == (3, 1)


def test_boundary_scan_finds_what_crosses_two_messages() -> None:
    detector = Counting()
    scan = CachedScan(detector.detect, "k", DetectorCache(1 << 20))
    parts = ["my card is 4111", "1111 and that's it"]
    found = scan.parts(parts, "boundary")
    whole = "\n".join(parts)
    assert [(f.type, whole[f.start : f.end]) for f in found.findings] == [("CARD", "4111\n1111")]


RULESET = """
ruleset chat version "1.0.0" {
  detector cards = pii(entities: [CREDIT_CARD, EMAIL_ADDRESS], min_score: 0.5)
  rule no_cards on input {
    when cards(content).found then block "card data"
  }
}
"""


def chat(*turns: str) -> dict[str, Any]:
    return {"stage": "input", "messages": [{"role": "user", "content": t} for t in turns]}


@pytest.fixture
def evaluator() -> Evaluator:
    pytest.importorskip("detectors.pii")
    return Evaluator(compile_source(RULESET), DetectorSettings(), cache=DetectorCache(1 << 20))


def test_a_resent_history_costs_only_the_new_message(evaluator: Evaluator) -> None:
    first = evaluator.evaluate(request_from_dict(chat("hi there", "my order is late")))
    second = evaluator.evaluate(request_from_dict(chat("hi there", "my order is late", "any news?")))
    third = evaluator.evaluate(request_from_dict(chat("hi there", "my order is late", "any news?")))
    assert (first.cache_hits, second.cache_hits, third.cache_hits) == (0, 3, 5)
    assert (first.cache_misses, second.cache_misses) == (3, 2)  # 2 messages + 1 boundary, then 1 + 1
    assert [r.cached for r in third.detectors] == [True]
    assert third.summary()["cache"] == {"hits": 5, "misses": 0}


def test_findings_of_a_chat_have_offsets_in_content(evaluator: Evaluator) -> None:
    request = request_from_dict(chat("hello 👋", "שלום, my card: 4111 1111 1111 1111 ok"))
    decision = evaluator.evaluate(request)
    [report] = decision.detectors
    assert [request.content[f.start : f.end] for f in report.findings] == ["4111 1111 1111 1111"]


def test_a_card_split_across_two_messages_is_found(evaluator: Evaluator) -> None:
    request = request_from_dict(chat("my card number is 4111 1111", "1111 1111, expiry 09/27"))
    decision = evaluator.evaluate(request)
    assert decision.outcome.label == "block"
    [report] = decision.detectors
    assert [request.content[f.start : f.end] for f in report.findings] == ["4111 1111\n1111 1111"]


def test_without_a_cache_budget_nothing_is_cached() -> None:
    pytest.importorskip("detectors.pii")
    graph = compile_source(RULESET)
    evaluator = Evaluator(graph, DetectorSettings(cache_bytes=0))
    decision = evaluator.evaluate(request_from_dict(chat("a", "b")))
    assert (decision.cache_hits, decision.cache_misses) == (0, 0)
    assert "cache" not in decision.summary()
