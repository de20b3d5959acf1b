"""Secrets detector: cloud keys, tokens, private keys, JWTs and high-entropy assignments."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import regex

from detectors.base import DetectorResult, Finding
from detectors.specs import DetectorSettings, SecretsParams
from detectors.textscan import MAX_FINDINGS, finditer_timed

GENERIC_SECRET = "GENERIC_SECRET"
GENERIC_RULE = "generic_assignment"
MIN_GENERIC_LENGTH = 8

# (type, rule name, pattern): the whole match is the secret.
_STRUCTURED_RULES = (
    (
        "AWS_ACCESS_KEY",
        "aws_access_key_id",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    (
        "GITHUB_TOKEN",
        "github_token",
        r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])",
    ),
    (
        "GITHUB_TOKEN",
        "github_fine_grained_pat",
        r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{36,255}(?![A-Za-z0-9_])",
    ),
    (
        "SLACK_TOKEN",
        "slack_token",
        r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9][A-Za-z0-9-]{8,250}[A-Za-z0-9]",
    ),
    (
        "PRIVATE_KEY",
        "pem_private_key",
        r"-----BEGIN (?P<label>(?:[A-Z0-9]+ ){0,3})PRIVATE KEY-----"
        r"[\s\S]{1,16384}?-----END (?P=label)PRIVATE KEY-----",
    ),
    (
        "JWT",
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    ),
)

_KEY_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "access_token",
    "auth_token",
    "token",
    "client_secret",
    "private_key",
)


def _generic_pattern() -> str:
    """``key = value`` and friends: the ``value`` group is the candidate secret."""
    keys = "|".join(n.replace("_", "[_-]") for n in sorted(_KEY_NAMES, key=len, reverse=True))
    separator = r"""["']?(?:[ \t]*(?::=|=>|[:=])[ \t]*|[ \t]+)"""
    value = (
        r"""(?|"(?P<value>[^"\r\n]{1,1024}+)"|'(?P<value>[^'\r\n]{1,1024}+)'"""
        r"""|(?P<value>[^\s"'`,;(){}\[\]<>]{1,1024}+)(?!\())"""
    )
    return rf"(?<![A-Za-z0-9])(?:{keys}){separator}{value}"


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0.0 for the empty string)."""
    probabilities = [count / len(value) for count in Counter(value).values()]
    return math.fsum(-p * math.log2(p) for p in probabilities)


@dataclass(frozen=True, slots=True)
class _Rule:
    type: str
    name: str
    pattern: regex.Pattern[str]


class SecretsDetector:
    """``secrets(types: [...], min_entropy: ...)``: credentials, reported by type and span."""

    def __init__(self, params: SecretsParams, settings: DetectorSettings) -> None:
        wanted = set(params.types)
        self._rules = tuple(
            _Rule(kind, name, regex.compile(source))
            for kind, name, source in _STRUCTURED_RULES
            if kind in wanted
        )
        self._generic = (
            regex.compile(_generic_pattern(), regex.IGNORECASE) if GENERIC_SECRET in wanted else None
        )
        self._min_entropy = params.min_entropy
        self._timeout_s = settings.regex_timeout_s

    def detect(self, text: str) -> DetectorResult:
        """Scan ``text``; raise DetectorError when a pattern times out."""
        found = [f for rule in self._rules for f in islice(self._structured(rule, text), MAX_FINDINGS)]
        if self._generic is not None:
            found += islice(self._assignments(self._generic, text), MAX_FINDINGS)
        return DetectorResult(tuple(_dedupe(found)[:MAX_FINDINGS]))

    def _structured(self, rule: _Rule, text: str) -> Iterator[Finding]:
        for m in finditer_timed(rule.pattern, text, self._timeout_s):
            yield Finding(rule.type, m.start(), m.end(), 1.0, rule.name)

    def _assignments(self, pattern: regex.Pattern[str], text: str) -> Iterator[Finding]:
        for m in finditer_timed(pattern, text, self._timeout_s):
            value = m["value"]
            entropy = shannon_entropy(value)
            if len(value) >= MIN_GENERIC_LENGTH and entropy >= self._min_entropy:
                start, end = m.span("value")
                yield Finding(GENERIC_SECRET, start, end, min(1.0, entropy / 5), GENERIC_RULE)


def _priority(finding: Finding) -> tuple[bool, int, int]:
    return (finding.type == GENERIC_SECRET, finding.start, finding.start - finding.end)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Keep findings that overlap no better one: structured types first, then earlier, longer.

    The result is sorted by start offset.
    """
    kept: list[Finding] = []
    for finding in sorted(findings, key=_priority):
        i = bisect.bisect_left(kept, finding.start, key=lambda k: k.start)
        clash_before = i > 0 and kept[i - 1].end > finding.start
        clash_after = i < len(kept) and kept[i].start < finding.end
        if not (clash_before or clash_after):
            kept.insert(i, finding)
    return kept
