"""Masked audit excerpts: PII and secrets as <TYPE> before the cut, the last messages, fail closed."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from detectors.base import Finding
from detectors.specs import DetectorSettings
from dsl.compiler import compile_source
from engine.runtime.detector_cache import DetectorCache
from engine.runtime.excerpts import MAX_MESSAGES, Excerpt, Excerpter, mask
from engine.runtime.request import Request, request_from_dict

EMAIL, PHONE = "jane.doe@example.com", "+1 (415) 555-0132"
CARD, AWS_KEY = "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"
RAW = (EMAIL, PHONE, CARD, AWS_KEY)
SENSITIVE = f"mail {EMAIL}, call {PHONE}, card {CARD}, key {AWS_KEY}."


@functools.cache
def excerpter(limit: int = 200) -> Excerpter:
    return Excerpter(limit, DetectorSettings(), DetectorCache(1 << 20))


def request(**fields: Any) -> Request:
    return request_from_dict({"stage": "input"} | fields)


def texts(excerpt: Excerpt) -> list[str]:
    return [part.text for part in excerpt.parts]


# mask(): placeholders, then the cut


def test_findings_become_typed_placeholders_and_overlaps_merge() -> None:
    text = "write to jane@example.com today"
    findings = [Finding("URL", 14, 25), Finding("EMAIL_ADDRESS", 9, 25)]
    assert mask(text, findings, 100) == ("write to <EMAIL_ADDRESS> today", False)


def test_the_cut_never_shows_part_of_a_placeholder() -> None:
    text = "key AKIAIOSFODNN7EXAMPLE here"
    findings = [Finding("AWS_ACCESS_KEY", 4, 24)]
    assert mask(text, findings, 10) == ("key ", True)  # "<AWS_ACCESS_KEY>" does not fit: left out whole
    assert mask(text, findings, 20) == ("key <AWS_ACCESS_KEY>", True)
    assert mask(text, findings, 25) == ("key <AWS_ACCESS_KEY> here", False)
    assert mask("plain words", [], 5) == ("plain", True)


# the excerpter on requests


def test_a_text_is_excerpted_with_every_pii_and_secret_masked() -> None:
    excerpt = excerpter().excerpt(request(text=SENSITIVE))
    assert excerpt.error == "" and excerpt.omitted == 0
    (part,) = excerpt.parts
    assert (part.source, part.role, part.length, part.truncated) == ("text", "", len(SENSITIVE), False)
    assert part.text == "mail <EMAIL_ADDRESS>, call <PHONE_NUMBER>, card <CREDIT_CARD>, key <AWS_ACCESS_KEY>."


def test_a_secret_that_runs_past_the_cut_is_masked_not_shown_in_part() -> None:
    text = "x" * 30 + " " + AWS_KEY
    (part,) = Excerpter(40, DetectorSettings()).excerpt(request(text=text)).parts
    assert part.text == "x" * 30 + " " and part.truncated
    assert "AKIA" not in part.text


def test_only_the_last_messages_are_excerpted_with_their_roles() -> None:
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(25)]
    excerpt = excerpter().excerpt(request(messages=messages))
    assert excerpt.omitted == 25 - MAX_MESSAGES
    assert texts(excerpt) == [f"turn {i}" for i in range(5, 25)]
    assert [p.role for p in excerpt.parts][:2] == ["user", "assistant"]
    assert {p.source for p in excerpt.parts} == {"message"}


def test_a_card_typed_across_two_messages_is_masked_on_both_sides() -> None:
    messages = [
        {"role": "user", "content": "my card is 4111 1111"},
        {"role": "user", "content": "1111 1111 thanks"},
    ]
    excerpt = excerpter().excerpt(request(messages=messages))
    assert texts(excerpt) == ["my card is <CREDIT_CARD>", "<CREDIT_CARD> thanks"]


def test_tool_arguments_are_excerpted_as_canonical_json_masked() -> None:
    tool = {"name": "http.post", "arguments": {"to": EMAIL, "token": AWS_KEY}}
    excerpt = excerpter().excerpt(request(stage="tool_call", tool=tool))
    (part,) = excerpt.parts
    assert part.source == "tool_args"
    assert part.text == '{"to": "<EMAIL_ADDRESS>", "token": "<AWS_ACCESS_KEY>"}'


def test_a_rulesets_own_pii_entities_are_masked_too() -> None:
    source = (
        'ruleset t version "1" {\n  audit excerpts 100\n  detector ids = pii(entities: [IN_PAN])\n'
        "  rule r on input { when ids(content).found then block }\n}"
    )
    masker = Excerpter.for_graph(compile_source(source), DetectorSettings())
    assert masker is not None and masker.limit == 100
    assert texts(masker.excerpt(request(text="PAN ABCPE1234F"))) == ["PAN <IN_PAN>"]


def test_a_ruleset_without_the_setting_has_no_excerpter() -> None:
    graph = compile_source('ruleset t version "1" { rule r on input { when content == "x" then block } }')
    assert Excerpter.for_graph(graph, DetectorSettings()) is None


def test_masked_results_are_cached_across_requests() -> None:
    cache = DetectorCache(1 << 20)
    masker = Excerpter(200, DetectorSettings(), cache)
    first = masker.excerpt(request(text=SENSITIVE))
    before = cache.stats().hits
    assert masker.excerpt(request(text=SENSITIVE)) == first
    assert cache.stats().hits == before + 1


# fail closed


def test_too_many_findings_to_mask_leaves_no_text_and_says_why() -> None:
    crowded = " ".join(f"user{i}@example.com" for i in range(1200))
    excerpt = excerpter().excerpt(request(text=crowded))
    assert excerpt.parts == () and "too many to mask" in excerpt.error
    assert "example.com" not in excerpt.error


@pytest.mark.parametrize("limit", [1, 7, 200])
def test_no_raw_value_survives_at_any_limit(limit: int) -> None:
    excerpt = Excerpter(limit, DetectorSettings()).excerpt(request(text=SENSITIVE))
    for part in excerpt.parts:
        assert len(part.text) <= limit
        assert not any(raw in part.text or raw[:6] in part.text for raw in RAW)
