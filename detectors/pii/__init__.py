"""The `pii` detector on presidio-analyzer's recognizers, and what tests and benchmarks import with it."""

# presidio, phonenumbers, tldextract and spaCy are imported by this package only, which is imported
# only when a pii detector is built: the compiler reads detectors.specs without them.

from detectors.pii.context import TokenNlpEngine
from detectors.pii.detector import PiiDetector
from detectors.pii.ner import ner_engine as _ner_engine
from detectors.pii.offline import offline_tldextract
from detectors.pii.registry import pattern_entities, recognizers

__all__ = [
    "PiiDetector",
    "TokenNlpEngine",
    "_ner_engine",  # benchmarks/pii_bench.py's name for ner_engine
    "offline_tldextract",
    "pattern_entities",
    "recognizers",
]
