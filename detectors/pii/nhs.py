"""UK_NHS findings that are phone numbers: presidio's NHS checksum passes one 10-digit number in eleven."""

from __future__ import annotations

from collections.abc import Sequence

from detectors.pii.findings import Raw
from detectors.pii.phones import PhoneRunner
from detectors.pii.registry import recognizers

NHS = "UK_NHS"
PHONE = "PHONE_NUMBER"


class NhsFilter:
    """Drops a UK_NHS finding that lies inside a phone number the phone matcher finds in the text,
    unless a context word (the NHS recognizer's, or the rule's) is near it.

    presidio's NhsRecognizer finds any ten digits that pass its checksum, at score 1.0: a US phone
    number such as "415-555-2671" too. Without NHS context, a valid phone number is taken for one.
    """

    def __init__(self, entities: Sequence[str]) -> None:
        # its own phone runner when the detector has none (UK_NHS without PHONE_NUMBER); the
        # findings of that one are never reported (index -1)
        own = NHS in entities and PHONE not in entities
        self._phones = PhoneRunner(recognizers([PHONE])[0], -1) if own else None

    def apply(self, text: str, found: list[Raw], plain: list[Raw], timeout_s: float) -> list[Raw]:
        """``found`` less its UK_NHS findings that are phone numbers (``plain``: those without context)."""
        suspects = [r for r in plain if r.type == NHS]
        if not suspects:
            return found
        phones = self._phones.run(text, timeout_s) if self._phones else [r for r in found if r.type == PHONE]
        dropped = {id(r) for r in suspects if any(p.start <= r.start and r.end <= p.end for p in phones)}
        return [r for r in found if id(r) not in dropped]
