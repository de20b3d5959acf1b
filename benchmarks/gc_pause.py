"""How long a full garbage collection stops a serving process, before and after freeze_heap()."""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Sequence

from engine.config import load_config
from engine.runtime.heap import freeze_heap
from engine.server.app import GuardServer


def _collections_ms(count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        gc.collect()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rulesets", default="rulesets", help="served as `palisade serve` would")
    parser.add_argument("--count", type=int, default=5, help="full collections timed on each side")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data_dir:
        flags = {"rulesets": args.rulesets, "listen": "127.0.0.1:0", "data_dir": data_dir, "workers": 1}
        server = GuardServer(load_config(None, flags))
        server.start()
        try:
            tracked = len(gc.get_objects())
            before = _collections_ms(args.count)
            freeze_heap()
            after = _collections_ms(args.count)
        finally:
            server.stop(0)
    print(f"rulesets {args.rulesets}: {tracked:,} objects tracked once serving")
    for name, times in (("before freeze_heap()", before), ("after", after)):
        print(f"{name}: full collection median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
