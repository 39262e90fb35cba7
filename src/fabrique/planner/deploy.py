"""Turn catalog entries into the model's parameter arrays: one entry per configuration, gathered
from small per-accelerator and per-model tables by index (how sweeps stay vectorized)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fabrique.planner.catalog import BYTES, PRECISIONS, Accelerator, Model
from fabrique.planner.engines import Engine
from fabrique.planner.perf import Arr, Params
from fabrique.planner.shapes import shape

KV_DEFAULT = {"fp16": "fp16", "fp8": "fp8", "fp4": "fp8"}  # FP4 weights keep an FP8 KV cache


def _hardware(accs: Sequence[Accelerator]) -> dict[str, Arr]:
    peak = np.array([[a.tflops[q] * 1e12 * a.gemm_efficiency[q] for q in PRECISIONS] for a in accs])
    attn_q = ["fp16", "fp8", "fp8"]  # attention runs at the KV cache's precision
    attn = np.array([[a.tflops[q] * 1e12 * a.gemm_efficiency[q] for q in attn_q] for a in accs])
    return {"peak": peak, "attn_peak": attn,
            "bw": np.array([a.memory_bw_tbs * 1e12 * a.hbm_efficiency for a in accs]),
            "link": np.array([a.nvlink_gbs * 1e9 for a in accs]),
            "network": np.array([a.network_gbs * 1e9 for a in accs]),
            "domain": np.array([float(a.nvlink_domain) for a in accs]),
            "mem": np.array([a.memory_gb * 1e9 for a in accs]),
            "sms": np.array([float(a.sms) for a in accs])}


def _models(models: Sequence[Model]) -> dict[str, Arr]:
    shapes = [shape(m) for m in models]
    return {"embed_in": np.array([s.embed_in for s in shapes]),
            "expert": np.array([s.expert_params for s in shapes]),
            "experts": np.array([float(s.experts) for s in shapes]),
            "active": np.array([float(s.active_experts) for s in shapes]),
            "moe_layers": np.array([float(s.moe_layers) for s in shapes]),
            "kv_elems": np.array([s.kv_elems_per_token for s in shapes]),
            "attn_fpc": np.array([s.attn_flops_per_ctx for s in shapes]),
            "act_elems": np.array([s.act_elems_per_token for s in shapes]),
            "layers": np.array([float(s.layers) for s in shapes]),
            "hidden": np.array([float(s.hidden) for s in shapes]),
            "kv_split": np.array([1.0 if s.mla else float(s.kv_heads) for s in shapes]),
            "attn_fp16_at_fp4": np.array([m.fp4_attention == "fp16" for m in models]),
            "gemm_n": np.array([[g[0] for g in s.gemms] for s in shapes]),
            "gemm_k": np.array([[g[1] for g in s.gemms] for s in shapes]),
            "gemm_count": np.array([[g[2] for g in s.gemms] for s in shapes]),
            "gemm_split": np.array([[float(g[3]) for g in s.gemms] for s in shapes])}


def build(accs: Sequence[Accelerator], models: Sequence[Model], engine: Engine,
          acc: Arr, mod: Arr, prec: Arr, n: Arr, dep: Arr, pp: Arr | float = 1.0,
          kv: Arr | None = None) -> Params:
    """Parameters for configurations given as index arrays into `accs`, `models` and PRECISIONS;
    `n` GPUs per stage and `pp` stages (a replica beyond one NVLink domain hands off over the
    scale-out network)."""
    hw, md = _hardware(accs), _models(models)
    a, m, q = acc.astype(np.intp), mod.astype(np.intp), prec.astype(np.intp)
    # Precision of each dense GEMM kind: the weights', except attention projections that an FP4
    # checkpoint leaves in BF16 (GEMM kinds 0 and 1: qkv and o) and the head (kind 6), which
    # quantized checkpoints keep in BF16 (ModelOpt and llm-compressor recipes exclude lm_head).
    fp4, fp16 = PRECISIONS.index("fp4"), PRECISIONS.index("fp16")
    keep = md.pop("attn_fp16_at_fp4")[m][..., None] & (q[..., None] == fp4) & (np.arange(7) < 2)
    kind = np.where(keep | (np.arange(7) == 6), fp16, q[..., None])
    wbytes = np.array([BYTES[x] for x in PRECISIONS])[q]
    # KV cache precision (index into PRECISIONS): the weights' default unless given; attention
    # computes at FP16 for an FP16 cache and at FP8 otherwise (an FP4 cache is dequantized).
    kv_q = (np.array([PRECISIONS.index(KV_DEFAULT[x]) for x in PRECISIONS])[q] if kv is None
            else kv.astype(np.intp))
    kvbytes = np.array([BYTES[x] for x in PRECISIONS])[kv_q]
    one = np.ones(np.broadcast(a, m, q, n, dep).shape)
    return Params(
        peak=hw["peak"][a, q], gemm_peak=hw["peak"][a[..., None], kind],
        gemm_bytes=np.array([BYTES[x] for x in PRECISIONS])[kind], attn_peak=hw["attn_peak"][a, kv_q],
        bw=hw["bw"][a], link=hw["link"][a],
        mem=hw["mem"][a], sms=hw["sms"][a] * one, **{k: v[m] for k, v in md.items()},
        n=n * one, dep=dep * one, pp=pp * one,
        p2p_link=np.where(n * pp > hw["domain"][a], hw["network"][a],
                          hw["link"][a]) * one, wbytes=wbytes, kvbytes=kvbytes,
        max_batch=engine.max_batch * one, max_tokens=engine.max_num_tokens * one,
        kv_frac=engine.kv_memory_fraction * one, workspace=engine.workspace_gb * 1e9 * one,
        t_step=engine.step_overhead_ms * 1e-3 * one, t_seq=engine.per_sequence_us * 1e-6 * one,
        t_layer=engine.per_layer_us * 1e-6 * one, alpha=engine.collective_latency_us * 1e-6 * one,
        link_eff=engine.link_efficiency * one,
        reserve_full=float(engine.reserve_full_sequence) * one,
        dp_balance=float(engine.attention_dp_balance) * one)


def single(acc: Accelerator, model: Model, precision: str, gpus: int, dep: bool,
           engine: Engine, pp: int = 1, kv_cache: str | None = None) -> Params:
    """Parameters for one configuration (0-d arrays): `gpus` GPUs in `pp` stages."""
    z = np.zeros(())
    kv = None if kv_cache is None else z + PRECISIONS.index(kv_cache)
    return build([acc], [model], engine, z, z, z + PRECISIONS.index(precision),
                 z + gpus / pp, z + float(dep), z + pp, kv)
