"""What a request cost, from its token counts and the profile's price table.

Prices are US dollars per million tokens, as providers publish them:
``input``, ``output``, ``cache_read``, ``cache_write``. A cache price left
out is charged at the input price (over-counting rather than letting a task
slip past its ``max_cost_usd``). Token counts follow :class:`Usage`:
``tokens_in`` is the input that was neither read from nor written to the
cache, so the four kinds never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PER = 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    input: float
    output: float
    cache_read: float
    cache_write: float

    @classmethod
    def from_config(cls, table: Mapping[str, Any] | None) -> Prices | None:
        if not table:
            return None
        input_price = float(table.get("input", 0.0))
        return cls(
            input=input_price,
            output=float(table.get("output", 0.0)),
            cache_read=float(table.get("cache_read", input_price)),
            cache_write=float(table.get("cache_write", input_price)),
        )

    def cost(self, tokens_in: int, tokens_out: int, cache_reads: int, cache_writes: int) -> float:
        return (
            tokens_in * self.input
            + tokens_out * self.output
            + cache_reads * self.cache_read
            + cache_writes * self.cache_write
        ) / PER
