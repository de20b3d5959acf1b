"""Masked audit excerpts (`audit excerpts N`): the start of each text, with PII and secrets as <TYPE>."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from detectors.base import Detector, DetectorError, DetectorResult, Finding
from detectors.specs import (
    PII_DEFAULT_ENTITIES,
    PII_NER_ENTITIES,
    SPECS,
    DetectorSettings,
    PiiParams,
    SecretsParams,
)
from detectors.textscan import MAX_FINDINGS
from dsl import ir
from engine.runtime.detector_cache import CachedScan, DetectorCache, detector_key
from engine.runtime.redaction import merged_spans
from engine.runtime.request import Request

# Messages excerpted: the last ones (a chat resends its history; the newest turn is what was asked
# about). The ones before are counted in ``omitted``.
MAX_MESSAGES = 20
# Every candidate a recognizer reports is masked, however weak (a bare 9-digit number may be a
# passport number): a masked order number costs an auditor little, a leaked passport number a lot.
MASK_MIN_SCORE = 0.0


@dataclass(frozen=True, slots=True)
class ExcerptPart:
    """One excerpted text: where it comes from, and its start with every PII and secret masked."""

    source: str  # "text" | "message" | "tool_args"
    role: str  # a message's role; "" for the others
    text: str  # masked, then cut to the limit (never inside a placeholder)
    length: int  # characters of the original text
    truncated: bool  # something was cut off the end

    def data(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "role": self.role,
            "text": self.text,
            "length": self.length,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Excerpt:
    """What an audit record holds for a ruleset with `audit excerpts N`. With ``error`` set, masking
    failed and ``parts`` is empty: no text is ever kept unmasked."""

    limit: int  # characters per part, as the ruleset declares
    parts: tuple[ExcerptPart, ...] = ()
    omitted: int = 0  # earlier messages left out (only the last MAX_MESSAGES are excerpted)
    error: str = ""

    def data(self) -> dict[str, Any]:
        """The record's ``excerpt`` member (no floats: canonical JSON as it stands)."""
        return {
            "limit": self.limit,
            "parts": [part.data() for part in self.parts],
            "omitted": self.omitted,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class _Source:
    kind: str
    role: str
    text: str
    shown: bool = True  # False: scanned only for what crosses into the next message


class Excerpter:
    """Masks and cuts a request's texts for one ruleset. Thread-safe; built once per ruleset version.

    Masking uses its own `pii` and `secrets` detectors, whatever the ruleset declares: presidio's
    default entities, the entities of the ruleset's own `pii` detectors, PERSON, LOCATION and NRP
    when the service runs NER, every secret type.
    """

    def __init__(
        self,
        limit: int,
        settings: DetectorSettings,
        cache: DetectorCache | None = None,
        extra_entities: Iterable[str] = (),
    ) -> None:
        entities = [*PII_DEFAULT_ENTITIES, *(PII_NER_ENTITIES if settings.pii_nlp_model else ())]
        entities += [e for e in extra_entities if e not in entities]
        pii_params = PiiParams(entities=entities, min_score=MASK_MIN_SCORE)
        self.limit = limit
        pii: Detector = SPECS["pii"].load()(pii_params, settings)
        secrets: Detector = SPECS["secrets"].load()(SecretsParams(), settings)
        self._pii, self._secrets = _complete(pii.detect), _complete(secrets.detect)
        # a key of its own: every cached entry under it passed _complete's check
        params = pii_params.model_dump(mode="json")
        self._pii_key = detector_key("pii", params, settings.pii_nlp_model or "") + "\0excerpt"
        self._cache = cache

    @classmethod
    def for_graph(
        cls, graph: ir.Graph, settings: DetectorSettings, cache: DetectorCache | None = None
    ) -> Excerpter | None:
        """The excerpter a ruleset asks for with `audit excerpts N`, or None (no excerpts: the default)."""
        if not graph.audit_excerpts:
            return None
        pii_nodes = [node for node in graph.detectors.values() if node.kind == "pii"]
        extra = [entity for node in pii_nodes for entity in node.params["entities"]]
        return cls(graph.audit_excerpts, settings, cache, extra)

    def excerpt(self, request: Request) -> Excerpt:
        """The masked excerpt of ``request``: fail closed, an error and no text when masking fails."""
        sources, omitted = _sources(request)
        try:
            parts = self._content(sources) + self._tool_args(request)
        except DetectorError as exc:
            return Excerpt(self.limit, omitted=omitted, error=f"masking failed, no excerpt kept: {exc}")
        except Exception as exc:  # a bug or a library failure: never fall back to the raw text
            message = f"masking failed, no excerpt kept: {type(exc).__name__}"
            return Excerpt(self.limit, omitted=omitted, error=message)
        return Excerpt(self.limit, tuple(parts), omitted)

    def _content(self, sources: list[_Source]) -> list[ExcerptPart]:
        """The text or the messages, scanned together (as `content` joins them) so that what crosses
        from one message into the next is masked on both sides."""
        if not sources:
            return []
        texts = [s.text for s in sources]
        found = self._scan(texts)
        parts, offset = [], 0
        for source in sources:
            end = offset + len(source.text)
            if source.shown:
                own = _clip(found, offset, end)
                parts.append(self._part(source.kind, source.role, source.text, own))
            offset = end + 1  # the joining newline
        return parts

    def _tool_args(self, request: Request) -> list[ExcerptPart]:
        if request.tool is None or not request.tool.arguments:
            return []
        text = request.tool_args_text
        return [self._part("tool_args", "", text, self._scan([text]))]

    def _scan(self, texts: list[str]) -> list[Finding]:
        """PII (each text through the cross-request cache, and across neighbours) and secrets (in the
        texts joined, so a private key split over two messages is still found), in joined offsets."""
        scan = CachedScan(self._pii, self._pii_key, self._cache)
        pii = scan.parts(texts, "boundary")
        secrets = self._secrets("\n".join(texts))
        return [*pii.findings, *secrets.findings]

    def _part(self, kind: str, role: str, text: str, findings: list[Finding]) -> ExcerptPart:
        masked, truncated = mask(text, findings, self.limit)
        return ExcerptPart(kind, role, _valid_unicode(masked), len(text), truncated)


def _complete(detect: Callable[[str], DetectorResult]) -> Callable[[str], DetectorResult]:
    """``detect``, refusing a result that may have been cut at the detectors' MAX_FINDINGS (what was
    cut off would be left unmasked): masking then fails, closed."""

    def checked(text: str) -> DetectorResult:
        result = detect(text)
        if len(result.findings) >= MAX_FINDINGS:
            raise DetectorError(f"{MAX_FINDINGS} or more findings in one text, too many to mask")
        return result

    return checked


def _sources(request: Request) -> tuple[list[_Source], int]:
    """The texts to excerpt, and how many earlier messages are left out."""
    if request.text:
        return [_Source("text", "", request.text)], 0
    messages = request.messages
    omitted = max(len(messages) - MAX_MESSAGES, 0)
    first = max(omitted - 1, 0)  # the message before the first shown: scanned, not shown
    sources = [_Source("message", m.role, m.content, i >= omitted) for i, m in enumerate(messages)]
    return sources[first:], omitted


def _clip(findings: list[Finding], start: int, end: int) -> list[Finding]:
    """The findings that touch ``[start, end)`` of the joined text, clipped to it and moved to 0."""
    return [
        Finding(f.type, max(f.start, start) - start, min(f.end, end) - start, f.score)
        for f in findings
        if f.start < end and f.end > start
    ]


def mask(text: str, findings: list[Finding], limit: int) -> tuple[str, bool]:
    """``text`` with each finding's span replaced by ``<TYPE>`` (overlaps merged, as redaction does),
    cut to at most ``limit`` characters; a placeholder that does not fit is left out whole, so a cut
    never shows part of a placeholder. Returns the excerpt and whether anything was cut off."""
    out: list[str] = []
    size = cursor = 0
    for span in merged_spans(text, findings):
        plain = text[cursor : span.start]
        if size + len(plain) > limit:
            out.append(plain[: limit - size])
            return "".join(out), True
        out.append(plain)
        size += len(plain)
        placeholder = f"<{span.kind}>"
        if size + len(placeholder) > limit:
            return "".join(out), True
        out.append(placeholder)
        size += len(placeholder)
        cursor = span.end
    rest = text[cursor:]
    out.append(rest[: limit - size])
    return "".join(out), size + len(rest) > limit


def _valid_unicode(text: str) -> str:
    """Lone surrogates (possible in a request built in Python, never from the wire) as U+FFFD, so the
    record is valid UTF-8."""
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
