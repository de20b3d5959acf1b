"""Encoded detector: base64 and hex blocks that decode to readable text (instructions slipped past)."""

from __future__ import annotations

from itertools import islice

from detectors.base import DetectorResult, Finding
from detectors.specs import DetectorSettings, EncodedParams
from detectors.textforms import encoded_blocks
from detectors.textscan import MAX_FINDINGS


class EncodedDetector:
    """``encoded(types: [BASE64_TEXT, HEX_TEXT], min_length: 16)``: each block that decodes to text.

    The decoded text is not put in the finding (it may be a secret someone encoded); rules scan it
    with the language's ``decoded(...)``: ``inj(decoded(content)).found``.
    """

    def __init__(self, params: EncodedParams, settings: DetectorSettings) -> None:
        self._types = frozenset(params.types)
        self._min_length = params.min_length

    def detect(self, text: str) -> DetectorResult:
        blocks = (b for b in encoded_blocks(text, self._min_length) if b.type in self._types)
        return DetectorResult(
            tuple(
                Finding(b.type, b.start, b.end, 1.0, f"decodes to {len(b.decoded)} characters")
                for b in islice(blocks, MAX_FINDINGS)
            )
        )
