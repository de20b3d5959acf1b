"""The pii detector's shortcuts find exactly what presidio's patterns and phonenumbers find.

Anchored patterns (only the space-free chunks of the text that hold an anchor are scanned), the
IBAN pre-check, and the national-number filter of the phone runner: each is compared here with the
plain computation, on tricky texts and on seeded random ones.
"""

from __future__ import annotations

import random
from typing import Any

import phonenumbers
import pytest
import regex
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from presidio_analyzer.predefined_recognizers import UrlRecognizer

from benchmarks.pii_bench import load_corpus
from detectors.pii import recognizers
from detectors.pii.analyzed import AnalyzedRunner
from detectors.pii.candidates import digits_of, filterable
from detectors.pii.detector import runner_for
from detectors.pii.nationals import national_numbers
from detectors.pii.patterns import ANCHORS, CompiledPattern, PatternRunner, digest
from detectors.specs import PII_PATTERN_ENTITIES

TRICKY = [
    "",
    " ",
    "Visit example.com, or www.test.co.uk/path?q=1 now.",
    "EXAMPLE.COM/A and http://x.io/p(q) and 'quoted.org' \"dq.net/x\"",
    "mail:john.doe+tag@sub-domain.example.org. or a@b.cc,c@d.ee;x@y.museum",
    "no spaces:a@b.cc,c@d.ee;http://x.io/::1,fe80::1%eth0/64",
    "addr ::1 and ::ffff:192.168.0.1 and fe80::1%eth0 and 2001:db8:85a3::8a2e:370:7334/64",
    "1:2:3:4:5:6:7:8 and :: and ::/0 and 1::2:3:4 and abcd:ef01::1.2.3.4 and 1:2:3:4:5:6:1.2.3.4.",
    "tab\tsep\texample.org\nnew line 10.0.0.1:: and ::\t::1\n",
    "  leading and trailing spaces example.com  ",
    "Licence A1234567, 12ABC12345, A-Z]]12, H12345678, x1, 1234567A, AB123456C, 123AB4567.",
    "DEA AB1234567, A91234567, ab1234567, KX\u0661\u0662\u0663\u0664\u0665\u0666\u0667, xx12345678901",
    "DEA \uff21\uff22\uff11\uff12\uff13\uff14\uff15\uff16\uff17, \u212aA1234567",
    "Kelvin \u212a1234567 and long \u017fs.com and caf\u00e9.fr and exa\u00e9mple.com",
    "no-break \u00a0nbsp.org\u00a0x and x.\u212az and \u0661.com",
    "IBAN GB82 WEST 1234 5698 7654 32, DE89370400440532013000, gb82west12345698765432, XX00",
    "dates 2024-01-02 and 1/2/2024, card 4111 1111 1111 1111, phone (212) 555-0143, ip 10.1.2.3",
    "\u00e9@\u00e9.\u00e9 \u0661@\u0661.com a@b.co.uk. -x@y-.com _@_.io a..b@c.d.e",
]

TOKENS = [
    *["example", ".", "com", "org", "co", "uk", "io", "www", "www1.", "http://", "/", "?q=1"],
    *["@", "+tag", "a", "ab", "A", "x", "_", "-", "--", "'", '"', "(", ")", ",", ";", "\u00e9", "\u017f"],
    *[":", "::", "ffff", "fe80", "db8", "%eth0", "1", "12", "255", "192.168.0.1", "1.2.3.4", "/64"],
    *["H", "A-Z", "]]", "12345678", "1234567", "9", "X", "R", "\u212a", "\u0663"],
    *["\u0661\u0662\u0663\u0664\u0665\u0666\u0667"],
    *["a@b.co", "x.y+z@", "@mail.example.org", "::ffff:", "1:2:3:4:5:6:", "fe80::", ":abcd", "0:0"],
    *["::ffff:10.1.2.3", "::1.2.3.4", "1:2::3:4:10.0.0.1", "a:b:c:d:e:f:1.2.3.4"],
    *[" ", " ", " ", "  ", "\t", "\n", "\u00a0"],
]


def random_texts(seed: int, count: int, tokens: list[str], most: int = 25) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(tokens) for _ in range(rng.randint(0, most))) for _ in range(count)]


def _patterns() -> list[tuple[Any, CompiledPattern, regex.Pattern[str]]]:
    """Every pattern of every pattern recognizer: presidio's pattern, the runner's, presidio's compiled."""
    found = []
    for index, recognizer in enumerate(recognizers(PII_PATTERN_ENTITIES)):
        runner = runner_for(recognizer, index)
        if isinstance(runner, PatternRunner):
            for source, pattern in zip(recognizer.patterns, runner.patterns, strict=True):
                plain = regex.compile(source.regex, flags=recognizer.global_regex_flags)
                found.append((source, pattern, plain))
    return found


def test_every_anchor_applies_to_the_installed_presidio() -> None:
    """A presidio upgrade that changes one of these patterns makes this fail: read the new pattern,
    check its anchor still holds, and update its digest in ANCHORS."""
    anchored = {digest(source.regex) for source, pattern, _ in _patterns() if pattern.anchor is not None}
    assert anchored == set(ANCHORS)
    iban = runner_for(recognizers(["IBAN_CODE"])[0], 0)
    assert isinstance(iban, AnalyzedRunner)
    assert iban.needs is not None


def test_all_tlds_of_the_url_pattern_start_with_an_ascii_letter() -> None:
    tlds = regex.findall(r"\(\?:([^()|]+)\)", UrlRecognizer.BASE_URL_REGEX.split("[.]", 1)[1])
    assert len(tlds) > 600
    assert all(tld[0].isascii() and tld[0].isalpha() for tld in tlds)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_anchored_patterns_find_what_presidios_patterns_find(seed: int) -> None:
    texts = TRICKY + random_texts(seed, 700, TOKENS)
    anchored = [(s, p, plain) for s, p, plain in _patterns() if p.anchor is not None]
    assert len(anchored) == len(ANCHORS)
    for source, pattern, plain in anchored:
        for text in texts:
            expected = [m.span() for m in plain.finditer(text)]
            assert [m.span() for m in pattern.matches(text, 5.0)] == expected, (source.name, text)


def test_anchored_patterns_keep_the_timeout() -> None:
    _, pattern, _ = next(t for t in _patterns() if t[0].name == "Non schema URL")
    text = "x.com " * 20_000
    with pytest.raises(TimeoutError):
        pattern.matches(text, 1e-6)


def test_the_url_anchor_is_exact_on_the_corpus_texts() -> None:
    _, pattern, plain = next(t for t in _patterns() if t[0].name == "Non schema URL")
    for text in _corpus_texts():
        assert [m.span() for m in pattern.matches(text, 5.0)] == [m.span() for m in plain.finditer(text)]


def _corpus_texts() -> list[str]:
    return load_corpus()[:200]


IBAN_TOKENS = [
    *["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "GB82", "DE89", "WEST", "1234", "0044"],
    *["gb82", "X", "XX00", "12", "AB", " ", "-", "  ", "IBAN", "7654 32", "00", "A1", "Z9Z9"],
]


def test_the_iban_pre_check_skips_only_texts_without_an_iban() -> None:
    recognizer = recognizers(["IBAN_CODE"])[0]
    runner = AnalyzedRunner(recognizer, 0)
    assert runner.needs is not None
    texts = TRICKY + random_texts(7, 1500, IBAN_TOKENS, most=12) + _corpus_texts()
    for text in texts:
        expected = [(r.start, r.end, r.score) for r in recognizer.analyze(text, ["IBAN_CODE"], None)]
        assert [(r.start, r.end, r.score) for r in runner.run(text, 5.0)] == expected, text


# The phone runner's national-number filter, against phonenumbers' own parse-and-verify


PREFIXES = [
    *["", "0", "00", "1", "01", "011", "49", "490", "4900", "33", "330", "972", "9720", "91", "910"],
    *["55", "550", "5590", "44", "440", "90", "015", "021", "0121", "1800", "0800", "180020", "0180020"],
]
SEPARATORS = ["", " ", "-", ".", "/", "(", ")"]


def _phone_candidates(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        digits = rng.choice(PREFIXES) + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
        text = "".join(c + (rng.choice(SEPARATORS) if rng.random() < 0.2 else "") for c in digits)
        found.append(text.strip(" -./"))
    return found


def _example_numbers() -> list[str]:
    regions = ["US", "CA", "GB", "DE", "FR", "IL", "IN", "BR", "AR", "IT", "MX", "JP", "AU", "JM", "GG"]
    found = set()
    for region in regions:
        for kind in vars(PhoneNumberType).values():
            example = phonenumbers.example_number_for_type(region, kind) if isinstance(kind, int) else None
            if example is None:
                continue
            for style in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                written = phonenumbers.format_number(example, style).lstrip("+")
                found.update({written, written.replace(" ", ""), "0" + written, "1" + written})
    return sorted(found)


def test_the_national_number_filter_never_drops_a_number_phonenumbers_finds() -> None:
    recognizer = recognizers(["PHONE_NUMBER"])[0]
    candidates = [c for c in _phone_candidates(11, 1500) + _example_numbers() if c and filterable(c)]
    valid = dropped = 0
    for candidate in candidates:
        for region in recognizer.supported_regions:
            matcher = phonenumbers.PhoneNumberMatcher(candidate, region, leniency=recognizer.leniency)
            found = matcher._parse_and_verify(candidate, 0)
            valid += found is not None
            if not national_numbers(region).possible(digits_of(candidate)):
                dropped += 1
                assert found is None, (region, candidate)
    assert valid > 500
    assert dropped > len(candidates)  # the filter does drop most pairs
