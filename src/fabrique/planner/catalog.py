"""Accelerator and model catalogs, read from the YAML data files shipped in the package.

Every number in the files is ``{value, source}``; loading keeps the value and checks the source is
there, so a number without provenance cannot slip in.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from fabrique.planner.errors import PlannerError, UnknownName

PRECISIONS = ("fp16", "fp8", "fp4")
BYTES = {"fp16": 2.0, "fp8": 1.0, "fp4": 0.5}


@dataclass(frozen=True)
class Accelerator:
    """One GPU (per-GPU numbers) and the system it ships in."""

    name: str
    status: str
    architecture: str
    system: str
    tflops: dict[str, float]          # dense, by precision; fp4 falls back to fp8 where absent
    native_fp4: bool
    memory_gb: float
    memory_bw_tbs: float
    sms: int
    nvlink_gbs: float
    nvlink_domain: int
    network_gbs: float
    gpu_power_w: float
    gpus_per_system: int
    system_power_kw: float
    systems_per_rack: int
    capex_eur_per_system: float
    gemm_efficiency: dict[str, float]
    hbm_efficiency: float
    rent_eur_per_gpu_hour: float | None
    sources: dict[str, str]


@dataclass(frozen=True)
class MoE:
    experts: int
    active: int
    shared: int
    expert_intermediate: int
    dense_layers: int


@dataclass(frozen=True)
class MLA:
    kv_lora_rank: int
    q_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class Model:
    """A transformer's architecture, as its config.json gives it."""

    name: str
    source: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    attention: str
    max_context: int
    params_b: float
    active_params_b: float | None
    moe: MoE | None
    mla: MLA | None
    fp4_attention: str = "fp4"   # precision of the attention projections in FP4 checkpoints


def _sourced(entry: dict[str, Any], key: str, where: str) -> Any:
    item = entry.get(key)
    if not isinstance(item, dict) or "value" not in item or not item.get("source"):
        raise PlannerError(f"{where}: {key} must be {{value, source}} with a non-empty source")
    return item["value"]


def _read(name: str) -> dict[str, Any]:
    text = resources.files("fabrique.planner").joinpath("data", name).read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _accelerator(entry: dict[str, Any]) -> Accelerator:
    where = f"accelerators.yaml: {entry['name']}"
    fp8 = float(_sourced(entry, "tflops_fp8", where))
    fp4 = _sourced(entry, "tflops_fp4", where)
    eff = entry["gemm_efficiency"]
    rent = entry.get("rent_eur_per_gpu_hour")
    sources = {k: v["source"] for k, v in entry.items() if isinstance(v, dict) and "source" in v}
    return Accelerator(
        name=entry["name"], status=entry["status"], architecture=entry["architecture"],
        system=entry["system"],
        tflops={"fp16": float(_sourced(entry, "tflops_bf16", where)), "fp8": fp8,
                "fp4": float(fp4) if fp4 is not None else fp8},
        native_fp4=fp4 is not None,
        memory_gb=float(_sourced(entry, "memory_gb", where)),
        memory_bw_tbs=float(_sourced(entry, "memory_bw_tbs", where)),
        sms=int(_sourced(entry, "sms", where)),
        nvlink_gbs=float(_sourced(entry, "nvlink_gbs", where)),
        nvlink_domain=int(_sourced(entry, "nvlink_domain", where)),
        network_gbs=float(_sourced(entry, "network_gbs", where)),
        gpu_power_w=float(_sourced(entry, "gpu_power_w", where)),
        gpus_per_system=int(_sourced(entry, "gpus_per_system", where)),
        system_power_kw=float(_sourced(entry, "system_power_kw", where)),
        systems_per_rack=int(_sourced(entry, "systems_per_rack", where)),
        capex_eur_per_system=float(_sourced(entry, "capex_eur_per_system", where)),
        gemm_efficiency={"fp16": float(_sourced(eff, "bf16", where)),
                         "fp8": float(_sourced(eff, "fp8", where)),
                         "fp4": float(_sourced(eff, "fp4", where))},
        hbm_efficiency=float(_sourced(entry, "hbm_efficiency", where)),
        rent_eur_per_gpu_hour=float(rent["value"]) if rent else None,
        sources=sources,
    )


def _model(entry: dict[str, Any]) -> Model:
    where = f"models.yaml: {entry['name']}"
    if not entry.get("source"):
        raise PlannerError(f"{where}: the architecture needs a source")
    moe = MoE(**entry["moe"]) if entry.get("moe") else None
    mla = MLA(**entry["mla"]) if entry.get("mla") else None
    active = _sourced(entry, "active_params_b", where) if "active_params_b" in entry else None
    return Model(
        name=entry["name"], source=entry["source"], layers=entry["layers"], hidden=entry["hidden"],
        heads=entry["heads"], kv_heads=entry["kv_heads"], head_dim=entry["head_dim"],
        intermediate=entry["intermediate"], vocab=entry["vocab"], attention=entry["attention"],
        max_context=entry["max_context"], params_b=float(_sourced(entry, "params_b", where)),
        active_params_b=float(active) if active is not None else None, moe=moe, mla=mla,
        fp4_attention=str(_sourced(entry, "fp4_attention", where)) if "fp4_attention" in entry
        else "fp4")


@cache
def _accelerators() -> tuple[dict[str, Accelerator], dict[str, str]]:
    entries = _read("accelerators.yaml")["accelerators"]
    return _index([_accelerator(e) for e in entries], entries)


@cache
def _models() -> tuple[dict[str, Model], dict[str, str]]:
    entries = _read("models.yaml")["models"]
    return _index([_model(e) for e in entries], entries)


def _index(items: list[Any], entries: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    by_name = {item.name: item for item in items}
    aliases = {item.name.lower(): item.name for item in items}
    for entry in entries:
        for alias in entry.get("aliases", []):
            aliases[str(alias).lower()] = entry["name"]
    return by_name, aliases


def _find(kind: str, name: str, table: tuple[dict[str, Any], dict[str, str]]) -> Any:
    by_name, aliases = table
    key = name.strip().lower()
    if key in aliases:
        return by_name[aliases[key]]
    ranked = sorted(by_name, key=lambda known: -difflib.SequenceMatcher(
        None, key, known.lower()).ratio())
    raise UnknownName(f"unknown {kind} {name!r}; known (closest first): {', '.join(ranked)}")


def model_aliases() -> dict[str, list[str]]:
    """Each model's other names (deepseek-r1 is deepseek-v3's architecture, for one)."""
    out: dict[str, list[str]] = {}
    for alias, name in _models()[1].items():
        if alias != name.lower():
            out.setdefault(name, []).append(alias)
    return out


def accelerator(name: str) -> Accelerator:
    """The accelerator called ``name`` (or an alias), case-insensitive."""
    return _find("GPU", name, _accelerators())  # type: ignore[no-any-return]


def model(name: str) -> Model:
    """The model called ``name`` (or an alias), case-insensitive."""
    return _find("model", name, _models())  # type: ignore[no-any-return]


def accelerators() -> list[Accelerator]:
    return list(_accelerators()[0].values())


def models() -> list[Model]:
    return list(_models()[0].values())


def precision(name: str) -> str:
    """Normalize a precision name; bf16 is fp16 for sizing and speed."""
    key = name.strip().lower()
    key = {"bf16": "fp16", "nvfp4": "fp4", "mxfp4": "fp4"}.get(key, key)
    if key not in PRECISIONS:
        raise PlannerError(f"unknown precision {name!r}; known: fp16 (bf16), fp8, fp4")
    return key
