"""The serving process's heap and the cyclic garbage collector: what start-up loaded is frozen."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Put every object alive now (the rulesets, the models and the libraries they load: about
    490,000 with the shipped rulesets) out of the cyclic garbage collector's reach. A full
    collection over them takes 0.05-0.4 s with every thread stopped, a stall that lands in the tail
    latency of whichever calls are in flight (benchmarks/GRPC.md). Called by `palisade serve` once
    serving starts and after each reload, and by `palisade mcp` once its Guard is open; what a
    reload replaces is freed by reference counting, and a reference cycle in it is kept."""
    gc.collect()
    gc.freeze()
