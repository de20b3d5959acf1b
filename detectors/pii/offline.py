"""tldextract on its bundled public-suffix list: never fetched, never cached on disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import tldextract

OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


@contextlib.contextmanager
def offline_tldextract() -> Iterator[None]:
    """Point tldextract's module-level extractor (presidio's EmailRecognizer calls it) at the bundled
    suffix list, for a reference AnalyzerEngine in tests and benchmarks; the detector never uses it."""
    module: Any = tldextract.tldextract
    saved = module.TLD_EXTRACTOR
    module.TLD_EXTRACTOR = OFFLINE_TLD
    try:
        yield
    finally:
        module.TLD_EXTRACTOR = saved
