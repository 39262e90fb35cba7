"""Serving-engine profiles (engines.yaml): batch caps, token budgets, fixed costs per step."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from fabrique.planner.catalog import _find, _index, _read, _sourced


@dataclass(frozen=True)
class Engine:
    name: str
    max_batch: int
    max_num_tokens: int
    kv_memory_fraction: float
    workspace_gb: float
    step_overhead_ms: float
    per_sequence_us: float
    per_layer_us: float
    collective_latency_us: float
    link_efficiency: float
    reserve_full_sequence: bool
    attention_dp_balance: bool
    bench_settings: bool = False   # batch cap and token budget chosen as trtllm-bench does


def _engine(entry: dict[str, object]) -> Engine:
    where = f"engines.yaml: {entry['name']}"
    values = {f: _sourced(entry, f, where) for f in Engine.__dataclass_fields__
              if f != "name" and (f in entry or f != "bench_settings")}
    return Engine(name=str(entry["name"]), **values)


@cache
def _engines() -> tuple[dict[str, Engine], dict[str, str]]:
    entries = _read("engines.yaml")["engines"]
    return _index([_engine(e) for e in entries], entries)


def engine(name: str) -> Engine:
    """The engine profile called ``name`` (trtllm, vllm)."""
    return _find("engine", name, _engines())  # type: ignore[no-any-return]


def engines() -> list[Engine]:
    return list(_engines()[0].values())
