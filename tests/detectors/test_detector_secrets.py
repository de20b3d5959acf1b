"""Tests for the secrets detector."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from detectors.base import DetectorError, DetectorResult, Finding
from detectors.secrets import SecretsDetector, shannon_entropy
from detectors.specs import SECRET_TYPES, SPECS, DetectorSettings, SecretsParams
from detectors.textscan import MAX_FINDINGS

SETTINGS = DetectorSettings()

AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"
AWS_TEMP_KEY = "ASIA" + "Q7XK2M9PLW3ZR5TV"
GITHUB_CLASSIC = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_FINE_GRAINED = "github_pat_" + "11ABCDEFG0abcdefghijkl" + "_" + "Zy9" * 20
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "MIIEpAIBAAKCAQEAfakefakefakefakefakefakefakefakefakefake\n" * 3
    + "-----END RSA PRIVATE KEY-----"
)
HIGH_ENTROPY = "Xk9#mQ2$vL7pR4wZ"


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


JWT = ".".join(
    [
        _b64url({"alg": "HS256", "typ": "JWT"}),
        _b64url({"sub": "1234567890", "name": "Test User"}),
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ]
)


def scan(text: str, **params: object) -> DetectorResult:
    return SecretsDetector(SecretsParams.model_validate(params), SETTINGS).detect(text)


def spans(text: str, result: DetectorResult) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in result.findings]


def assert_secret_free(finding: Finding, secret: str) -> None:
    assert secret not in finding.detail
    assert secret not in repr(finding)


@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("AWS_ACCESS_KEY", AWS_KEY),
        ("AWS_ACCESS_KEY", AWS_TEMP_KEY),
        ("GITHUB_TOKEN", GITHUB_CLASSIC),
        ("GITHUB_TOKEN", GITHUB_FINE_GRAINED),
        ("SLACK_TOKEN", SLACK),
        ("PRIVATE_KEY", PEM),
        ("JWT", JWT),
    ],
)
def test_structured_secret_is_found_with_exact_span(kind: str, secret: str) -> None:
    text = f"here is the thing:\n{secret}\nplease keep it safe"
    result = scan(text)
    assert spans(text, result) == [(kind, secret)]
    (finding,) = result.findings
    assert finding.score == 1.0
    assert finding.detail
    assert_secret_free(finding, secret)


def test_private_key_span_covers_the_whole_block() -> None:
    text = f"key:\n{PEM}\nend"
    (finding,) = scan(text).findings
    assert finding.start == text.index("-----BEGIN")
    assert finding.end == text.index("-----END") + len("-----END RSA PRIVATE KEY-----")


def test_unterminated_or_mismatched_pem_block_is_not_a_private_key() -> None:
    mismatched = PEM.replace("END RSA", "END EC")
    assert not scan(mismatched, types=["PRIVATE_KEY"]).found
    assert not scan(PEM.partition("-----END")[0], types=["PRIVATE_KEY"]).found


@pytest.mark.parametrize(
    "text",
    [
        "AKIA" + "ABCDEFGHIJKLMNO",  # one character short
        "AKIA" + "ABCDEFGHIJKLMNOPQ",  # one character too many
        "xAKIA" + "ABCDEFGHIJKLMNOP",  # inside a longer word
        "ghp_" + "short",
        "eyJhbGciOi.short",
        "the token embeddings of each tokenization step are unexpectedly large",
    ],
)
def test_near_misses_are_not_reported(text: str) -> None:
    assert not scan(text).found


def test_offsets_are_character_offsets_after_non_ascii_text() -> None:
    text = f"clé d'accès 🔑 ünïcode: {AWS_KEY}"
    (finding,) = scan(text).findings
    assert finding.start == text.index(AWS_KEY)
    assert text[finding.start : finding.end] == AWS_KEY


@pytest.mark.parametrize(
    "text",
    [
        f'password = "{HIGH_ENTROPY}"',
        f"DB_PASSWORD={HIGH_ENTROPY}",
        f'{{"api_key": "{HIGH_ENTROPY}"}}',
        f"apiKey: '{HIGH_ENTROPY}'",
        f"secret := {HIGH_ENTROPY}",
        f"client-secret => {HIGH_ENTROPY}",
        f"Authorization: token {HIGH_ENTROPY}",
        f"private_key: {HIGH_ENTROPY}, next",
    ],
)
def test_generic_assignment_reports_the_value_only(text: str) -> None:
    result = scan(text)
    assert spans(text, result) == [("GENERIC_SECRET", HIGH_ENTROPY)]
    (finding,) = result.findings
    assert finding.score == pytest.approx(min(1.0, shannon_entropy(HIGH_ENTROPY) / 5))
    assert_secret_free(finding, HIGH_ENTROPY)


@pytest.mark.parametrize(
    "text",
    [
        'password = "password"',  # low entropy
        'pwd = "x9#Q$k"',  # high entropy but shorter than 8
        "token = get_token_from_vault()",  # a call, not a literal
        'secret = os.environ["SECRET"]',
        "password_hash = abcdefghijklmnopqrstuvwxyz0123",  # not one of the key names
    ],
)
def test_generic_assignment_near_misses(text: str) -> None:
    assert not scan(text).found


def test_min_entropy_is_honoured() -> None:
    text = f'password = "{HIGH_ENTROPY}"'
    assert scan(text, min_entropy=3.5).found
    assert not scan(text, min_entropy=shannon_entropy(HIGH_ENTROPY) + 0.01).found


def test_types_filter_what_is_reported() -> None:
    text = f"aws {AWS_KEY} jwt {JWT} slack {SLACK}"
    assert spans(text, scan(text, types=["JWT"])) == [("JWT", JWT)]
    assert scan(text, types=["AWS_ACCESS_KEY", "SLACK_TOKEN"]).types == frozenset(
        {"AWS_ACCESS_KEY", "SLACK_TOKEN"}
    )
    assert not scan(text, types=[]).found


def test_structured_type_wins_over_an_overlapping_generic_secret() -> None:
    text = f'{{"token": "{JWT}", "password": "{HIGH_ENTROPY}"}}'
    result = scan(text)
    assert spans(text, result) == [("JWT", JWT), ("GENERIC_SECRET", HIGH_ENTROPY)]
    generic_only = scan(text, types=["GENERIC_SECRET"])
    assert spans(text, generic_only) == [
        ("GENERIC_SECRET", JWT),
        ("GENERIC_SECRET", HIGH_ENTROPY),
    ]


def test_findings_are_sorted_and_never_carry_secrets() -> None:
    secrets = [SLACK, AWS_KEY, PEM, GITHUB_CLASSIC, JWT]
    text = "\n".join(f"item {i}: {s}" for i, s in enumerate(secrets))
    text += f'\npassword = "{HIGH_ENTROPY}"'
    result = scan(text)
    assert [f.start for f in result.findings] == sorted(f.start for f in result.findings)
    assert result.types == frozenset(SECRET_TYPES)
    for finding in result.findings:
        for secret in [*secrets, HIGH_ENTROPY]:
            assert_secret_free(finding, secret)


def test_findings_are_capped() -> None:
    result = scan(" ".join([AWS_KEY] * (MAX_FINDINGS + 10)))
    assert len(result.findings) == MAX_FINDINGS


def test_a_pattern_timeout_raises_detector_error() -> None:
    detector = SecretsDetector(SecretsParams(types=["PRIVATE_KEY"]), DetectorSettings(regex_timeout_s=1e-6))
    text = ("-----BEGIN PRIVATE KEY-----\n" + "A" * 16_000 + "\n") * 200
    with pytest.raises(DetectorError, match="timed out"):
        detector.detect(text)


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


def test_params_reject_an_unknown_type() -> None:
    with pytest.raises(ValidationError, match="unknown secret type"):
        SecretsParams(types=["AWS_ACCESS_KEY", "CREDIT_CARD"])


def test_spec_loads_this_implementation() -> None:
    detector = SPECS["secrets"].load()(SecretsParams(), SETTINGS)
    assert detector.detect(f"key {AWS_KEY}").types == frozenset({"AWS_ACCESS_KEY"})
