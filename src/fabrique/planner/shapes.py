"""What a model's architecture implies for inference: parameters by kind, KV-cache elements per
token, and attention FLOPs per context token. Plain arithmetic over the config.json numbers."""

from __future__ import annotations

from dataclasses import dataclass

from fabrique.planner.catalog import Model


@dataclass(frozen=True)
class Shape:
    """Counts for a whole model (all layers); parameters in units, not billions."""

    params_total: float        # every weight (embeddings and head included)
    params_active: float       # weights one token touches (routed experts: the active ones)
    params_dense: float        # weights every token reads: attention, dense FFNs, shared experts, head
    embed_in: float            # the input embedding (a lookup, no FLOPs, read one row per token)
    expert_params: float       # one routed expert in one MoE layer
    experts: int               # routed experts per MoE layer (0 for dense models)
    active_experts: int
    moe_layers: int
    kv_elems_per_token: float  # KV-cache elements per token over all layers
    attn_flops_per_ctx: float  # attention FLOPs per (query token, context token) over all layers
    layers: int
    hidden: int
    kv_heads: int
    mla: bool
    act_elems_per_token: float  # activation elements elementwise kernels read and write, all layers
    # The dense GEMMs of one forward pass, as (N, K, count, split): split 0 = column-parallel
    # (TP divides N), 1 = row-parallel (TP divides K). Always GEMM_KINDS entries (count 0 if absent).
    gemms: tuple[tuple[float, float, float, int], ...]


GEMM_KINDS = 7  # qkv, o, dense up, dense down, shared up, shared down, head


def _gemms(m: Model, attn_params_per_layer: float) -> tuple[tuple[float, float, float, int], ...]:
    h, layers = float(m.hidden), float(m.layers)
    o_k = float(m.heads * (m.mla.v_head_dim if m.mla else m.head_dim))
    qkv_n = attn_params_per_layer / h - o_k  # what is not the output projection, as one GEMM
    dense_layers = float(m.moe.dense_layers if m.moe else m.layers)
    shared = float((m.layers - m.moe.dense_layers) * m.moe.shared) if m.moe else 0.0
    e_inter = float(m.moe.expert_intermediate) if m.moe else 0.0
    return ((qkv_n, h, layers, 0), (h, o_k, layers, 1),
            (2.0 * m.intermediate, h, dense_layers, 0), (h, float(m.intermediate), dense_layers, 1),
            (2.0 * e_inter, h, shared, 0), (h, e_inter, shared, 1),
            (float(m.vocab), h, 1.0, 0))


def _attention_params(m: Model) -> float:
    if m.mla is not None:
        a = m.mla
        q = m.hidden * a.q_lora_rank + a.q_lora_rank * m.heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        kv = m.hidden * (a.kv_lora_rank + a.qk_rope_head_dim) \
            + a.kv_lora_rank * m.heads * (a.qk_nope_head_dim + a.v_head_dim)
        return float(q + kv + m.heads * a.v_head_dim * m.hidden)
    return float(2 * m.hidden * m.heads * m.head_dim + 2 * m.hidden * m.kv_heads * m.head_dim)


def shape(m: Model) -> Shape:
    attn = _attention_params(m) * m.layers
    embed = float(m.vocab * m.hidden)
    head = float(m.vocab * m.hidden)
    if m.moe is None:
        dense_ffn = 3.0 * m.hidden * m.intermediate * m.layers
        dense = attn + dense_ffn + head
        total = dense + embed
        expert, experts, active, moe_layers = 0.0, 0, 0, 0
        ffn_act = 3.0 * m.intermediate * m.layers
    else:
        e = m.moe
        moe_layers = m.layers - e.dense_layers
        expert = 3.0 * m.hidden * e.expert_intermediate
        dense_ffn = 3.0 * m.hidden * m.intermediate * e.dense_layers
        shared = expert * e.shared * moe_layers
        router = float(m.hidden * e.experts * moe_layers)
        dense = attn + dense_ffn + shared + router + head
        total = dense + embed + expert * e.experts * moe_layers
        experts, active = e.experts, e.active
        ffn_act = 3.0 * (m.intermediate * e.dense_layers
                         + (e.active + e.shared) * e.expert_intermediate * moe_layers)
    if m.mla is not None:
        kv = float((m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) * m.layers)
        # Absorbed MLA decode: scores over the latent+rope (576) and values over the latent (512).
        per_ctx = 2.0 * m.heads * (2 * m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) * m.layers
    else:
        kv = float(2 * m.kv_heads * m.head_dim * m.layers)
        per_ctx = 4.0 * m.heads * m.head_dim * m.layers
    return Shape(params_total=total, params_active=dense + embed + expert * active * moe_layers,
                 params_dense=dense, embed_in=embed, expert_params=expert, experts=experts,
                 active_experts=active, moe_layers=moe_layers, kv_elems_per_token=kv,
                 attn_flops_per_ctx=per_ctx, layers=m.layers, hidden=m.hidden,
                 kv_heads=m.kv_heads, mla=m.mla is not None,
                 # norms, residual adds, rope and GEMM-input quantization (~12 hidden-sized
                 # reads/writes per layer) plus the gated activation (read 2, write 1 intermediate)
                 act_elems_per_token=12.0 * m.hidden * m.layers + ffn_act,
                 gemms=_gemms(m, _attention_params(m)))
