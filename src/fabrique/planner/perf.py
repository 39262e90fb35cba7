"""The inference performance model, vectorized: every function takes NumPy arrays (one entry per
configuration) and broadcasts, so one call evaluates one batch size or a million configurations.

One engine step is a sum of kernel rooflines, each max(bytes / bandwidth, FLOPs / peak):
- the weight GEMMs of all tokens in the step (decode tokens plus interleaved prefill chunks);
- for MoE, the routed-expert GEMMs: only the experts some token touched are read, the busiest GPU
  sets the pace (load imbalance), and each expert's rows are padded to the tensor-core tile;
- attention: decode reads each sequence's KV cache; prefill is quadratic in the prompt;
- elementwise kernels streaming activations through HBM;
- communication over NVLink: tensor-parallel all-reduces, or expert-parallel all-to-all, and
  hand-offs between pipeline stages;
- fixed costs per step, per running sequence and per layer (scheduling, sampling, launches).
See docs/planner.md for the assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.float64]
TILE_M, TILE_N = 128.0, 256.0  # output tile of one SM's GEMM work unit (CUTLASS Hopper/Blackwell)


@dataclass(frozen=True)
class Params:
    """One configuration per entry: hardware, model, precision, parallelism and engine."""

    peak: Arr            # achievable GEMM FLOP/s per GPU at the weight precision
    attn_peak: Arr       # achievable attention FLOP/s per GPU
    bw: Arr              # achievable HBM bytes/s per GPU
    link: Arr            # NVLink bytes/s per GPU, one direction
    mem: Arr             # HBM bytes per GPU
    embed_in: Arr        # input embedding parameters (held in BF16, one row read per token)
    expert: Arr          # parameters of one routed expert in one layer
    experts: Arr
    active: Arr
    moe_layers: Arr
    kv_elems: Arr        # KV elements per token, all layers
    attn_fpc: Arr        # attention FLOPs per (query, context) token pair
    act_elems: Arr       # activation elements per token moved by elementwise kernels
    gemm_n: Arr          # [..., GEMM_KINDS] dense GEMM shapes (see shapes.Shape.gemms)
    gemm_k: Arr
    gemm_count: Arr
    gemm_split: Arr
    gemm_peak: Arr       # [..., GEMM_KINDS] achievable FLOP/s of each kind (its own precision)
    gemm_bytes: Arr      # [..., GEMM_KINDS] bytes per weight of each kind
    sms: Arr             # streaming multiprocessors per GPU
    layers: Arr
    hidden: Arr
    kv_split: Arr        # ranks the KV cache divides over under TP (KV heads; 1 for MLA)
    n: Arr               # GPUs per pipeline stage (the TP or EP group)
    pp: Arr              # pipeline stages per replica (a replica has n x pp GPUs)
    p2p_link: Arr        # bytes/s between stages (NVLink inside a domain, the network across)
    dep: Arr             # 1: attention data-parallel + expert-parallel (MoE); 0: tensor-parallel
    wbytes: Arr
    kvbytes: Arr
    max_batch: Arr       # engine cap on running sequences (per attention rank)
    max_tokens: Arr      # engine cap on tokens per step (per attention rank)
    kv_frac: Arr
    workspace: Arr       # bytes per GPU kept outside weights and KV cache
    t_step: Arr          # seconds per step, fixed
    t_seq: Arr           # seconds per running sequence per step (per rank)
    t_layer: Arr         # seconds per layer per step
    alpha: Arr           # collective latency, seconds
    link_eff: Arr        # achieved share of NVLink bandwidth in collectives
    reserve_full: Arr    # 1: KV reserved for input+output at admission; 0: paged as it grows
    dp_balance: Arr      # 1: the engine spreads prefills evenly over attention-DP ranks each step


def _ranks(p: Params) -> Arr:
    """Ranks the running batch spreads over: all GPUs with attention-DP, one group under TP."""
    return np.where(p.dep > 0, p.n, 1.0)


def weights_per_gpu(p: Params) -> Arr:
    """Bytes of weights one GPU holds (TP splits everything; DEP replicates all but experts)."""
    routed = p.expert * p.experts * p.moe_layers * p.wbytes
    dense = (p.gemm_n * p.gemm_k * p.gemm_count * p.gemm_bytes).sum(axis=-1) + p.embed_in * 2.0
    held: Arr = np.where(p.dep > 0, dense + routed / p.n, (dense + routed) / p.n) / p.pp
    return held


def kv_bytes_per_token(p: Params) -> Arr:
    """KV bytes one token of one sequence occupies over the replica (replicated heads counted)."""
    replicas = np.where(p.dep > 0, 1.0, p.n / np.minimum(p.n, p.kv_split))
    return p.kv_elems * p.kvbytes * replicas


def kv_free_bytes(p: Params) -> Arr:
    """KV-cache bytes over the replica after weights and workspace (negative: does not fit)."""
    free = (p.mem - weights_per_gpu(p) - p.workspace) * p.kv_frac
    scaled_up: Arr = free * p.n * p.pp
    return scaled_up


def max_batch(p: Params, isl: Arr, osl: Arr) -> Arr:
    """Running sequences the replica allows: the least of memory, the engine's batch cap and its
    token budget per step (each step also carries the prefill of isl/osl tokens per sequence)."""
    seq_tokens = isl + np.where(p.reserve_full > 0, osl, osl / 2.0)
    by_memory = np.floor(np.maximum(kv_free_bytes(p), 0.0) / (seq_tokens * kv_bytes_per_token(p)))
    ranks = _ranks(p)
    by_cap = p.max_batch * ranks
    by_tokens = np.floor(p.max_tokens * ranks / (1.0 + isl / osl))
    return np.minimum(np.minimum(by_memory, by_cap), np.maximum(by_tokens, 1.0))


def _roof(nbytes: Arr, flops: Arr, p: Params, peak: Arr) -> Arr:
    return np.maximum(nbytes / p.bw, flops / peak)


def _experts(p: Params, tokens: Arr) -> Arr:
    """Routed-expert time on the busiest GPU for `tokens` tokens in the step."""
    has = p.experts > 0
    e = np.where(has, p.experts, 1.0)
    touched = e * (1.0 - np.power(1.0 - p.active / e, tokens))      # experts with >= 1 token
    # DEP: each GPU holds experts/n; TP: every GPU holds a 1/n slice of every expert.
    local_touched = np.where(p.dep > 0, touched / p.n, touched)
    mean = tokens * p.active / np.where(p.dep > 0, p.n, 1.0)         # routed rows per GPU
    busiest = mean + np.sqrt(2.0 * mean * np.log(np.maximum(p.n, 1.0))) * (p.dep > 0)
    rows = busiest + local_touched * TILE_M / 2.0                    # half a tile wasted per expert
    slice_ = np.where(p.dep > 0, 1.0, 1.0 / p.n)
    nbytes = local_touched * p.expert * slice_ * p.moe_layers * p.wbytes
    flops = 2.0 * rows * p.expert * slice_ * p.moe_layers
    return np.where(has, _roof(nbytes, flops, p, p.peak), 0.0)


def _tile_efficiency(m: Arr, n: Arr, sms: Arr) -> Arr:
    """Useful share of the tensor cores for an m x n output: tiles are padded to TILE_M x TILE_N
    and run in waves of one tile per SM, the last wave partly idle. When there are fewer tiles
    than SMs, the kernel splits K to fill them (split-K)."""
    m_tiles = np.ceil(m / TILE_M)
    n_tiles = np.ceil(n / TILE_N)
    units = m_tiles * n_tiles
    units = units * np.maximum(np.floor(sms / units), 1.0)
    waves = np.ceil(units / sms)
    useful: Arr = (m / (m_tiles * TILE_M)) * (n / (n_tiles * TILE_N)) * units / (waves * sms)
    return useful


def _dense_gemms(p: Params, rank_tokens: Arr) -> Arr:
    """Attention projections, dense and shared FFNs and the head, each its own roofline, for
    the tokens of the busiest attention rank."""
    tp = np.where(p.dep > 0, 1.0, p.n)[..., None]
    rows = np.maximum(rank_tokens, 1.0)[..., None]
    n = p.gemm_n / np.where(p.gemm_split == 0, tp, 1.0)
    k = p.gemm_k / np.where(p.gemm_split == 1, tp, 1.0)
    present = p.gemm_count > 0
    n = np.where(present, n, 1.0)
    eff = _tile_efficiency(rows, n, p.sms[..., None])
    nbytes = n * k * p.gemm_count * p.gemm_bytes
    flops = 2.0 * rows * n * k * p.gemm_count
    t = np.maximum(nbytes / p.bw[..., None], flops / (p.gemm_peak * eff))
    total: Arr = np.where(present, t, 0.0).sum(axis=-1)
    return total


def _communication(p: Params, tokens: Arr) -> Arr:
    n = p.n
    frac = (n - 1.0) / n
    # TP: two all-reduces per layer of the step's activations (bf16), ring cost 2(n-1)/n.
    link = p.link * p.link_eff
    tp = p.layers * 2.0 * (p.alpha + 2.0 * frac * tokens * p.hidden * 2.0 / link)
    # DEP: dispatch (fp8) and combine (bf16) all-to-all per MoE layer, from this rank's tokens.
    sent = tokens / n * p.active * p.hidden * 3.0 * frac
    dep = p.moe_layers * (2.0 * p.alpha + sent / link)
    return np.where(n > 1, np.where(p.dep > 0, dep, tp), 0.0)


def _poisson_max(lam: Arr, n: Arr) -> Arr:
    """Expected maximum of `n` independent Poisson(`lam`) counts (exact sum over the first 32
    values; the Gaussian extreme, lam + sqrt(2 lam ln n), beyond lam = 8)."""
    lam = np.maximum(lam, 1e-12)
    pmf = np.exp(-lam)
    cdf = pmf.copy()
    expected = np.zeros_like(lam)
    for k in range(1, 33):
        expected = expected + (1.0 - cdf ** n)   # P(max >= k)
        pmf = pmf * lam / k
        cdf = cdf + pmf
    gauss = lam + np.sqrt(2.0 * lam * np.log(np.maximum(n, 1.0)))
    result: Arr = np.where(lam > 8.0, gauss, expected)
    return result


def _busiest_rank_prefill(p: Params, batch: Arr, prefill: Arr, prompt: Arr) -> Arr:
    """Prompt tokens on the busiest attention rank in a step.

    Under attention data parallelism each prompt (or chunk) is prefilled by one rank, and every
    rank waits for the slowest at the next expert all-to-all. Unless the engine balances
    prefills over ranks, chunks land at random: chunks per rank per step ~ Poisson, and the
    step pays for the maximum, not the mean."""
    ranks = _ranks(p)
    mean = prefill / ranks
    random = (p.dep > 0) & (p.dp_balance <= 0) & (ranks > 1)
    if not np.any(random):          # dense or balanced: skip the sum (sweeps stay fast)
        return mean
    chunk = np.maximum(np.minimum(prompt, p.max_tokens - batch / ranks), 1.0)
    mean_b, chunk_b, ranks_b, random_b = np.broadcast_arrays(mean, chunk, ranks, random)
    out: Arr = np.array(mean_b, dtype=float, copy=True)
    lam = mean_b[random_b] / chunk_b[random_b]
    out[random_b] = np.maximum(chunk_b[random_b] * _poisson_max(lam, ranks_b[random_b]),
                               mean_b[random_b])
    return out


def step_time(p: Params, batch: Arr, prefill: Arr, context: Arr, prompt: Arr) -> Arr:
    """Seconds of one step: `batch` decode tokens at mean `context`, plus `prefill` prompt tokens
    (from prompts of length `prompt`, so each attends to prompt/2 tokens on average).

    With pipeline stages the batch runs as `pp` microbatches; in steady state each stage works
    through all of them for its share of the layers, so one round (one token per sequence)
    costs the whole model at a microbatch on one stage group, plus the fixed cost of every
    microbatch and the hand-offs between stages."""
    full = batch
    batch, prefill = batch / p.pp, prefill / p.pp
    tokens = batch + prefill
    ranks = _ranks(p)
    rank_prefill = _busiest_rank_prefill(p, batch, prefill, prompt)
    rank_tokens = batch / ranks + rank_prefill
    gemm = _dense_gemms(p, rank_tokens) + _experts(p, tokens)
    kv_read = batch * context * kv_bytes_per_token(p) / p.n
    heads_split = np.where(p.dep > 0, 1.0, p.n)   # TP splits the heads; DEP keeps them whole
    attn = _roof(kv_read, batch * context * p.attn_fpc / p.n, p, p.attn_peak) \
        + rank_prefill * prompt / 2.0 * p.attn_fpc / heads_split / p.attn_peak
    # elementwise kernels between the GEMMs stream activations (bf16) through HBM
    elementwise = rank_tokens * p.act_elems * 2.0 / heads_split / p.bw
    fixed = p.t_step * p.pp + p.t_seq * full / ranks + p.t_layer * p.layers
    handoff = np.where(p.pp > 1, p.pp * (p.alpha + tokens * p.hidden * 2.0 / p.n / p.p2p_link), 0.0)
    return gemm + attn + elementwise + _communication(p, tokens) + fixed + handoff


@dataclass(frozen=True)
class Curve:
    """The throughput-latency curve over batch sizes (same shape as `batch`)."""

    batch: Arr
    tpot_s: Arr
    ttft_s: Arr
    tokens_per_s_per_gpu: Arr


def curve(p: Params, batch: Arr, isl: Arr, osl: Arr) -> Curve:
    """Steady state of continuous batching at `batch` running sequences.

    Each step emits one token per sequence and, on average, carries batch*isl/osl prompt tokens
    (chunked prefill), so TPOT includes the interleaved prefill. A new request's prompt is
    prefilled in chunks of what the step's token budget leaves, after waiting half a step.
    """
    context = isl + osl / 2.0
    t = step_time(p, batch, batch * isl / osl, context, isl)
    budget = np.maximum(p.max_tokens * _ranks(p) - batch, 1.0)
    chunk = np.minimum(budget, isl)
    chunks = np.ceil(isl / chunk)
    ttft = chunks * step_time(p, batch, chunk, context, isl) + 0.5 * t
    return Curve(batch=batch, tpot_s=t, ttft_s=ttft, tokens_per_s_per_gpu=batch / t / (p.n * p.pp))


def offline_run(p: Params, batch: Arr, isl: Arr, osl: Arr, requests: Arr) -> Arr:
    """Output tokens/s per GPU of a finite offline run (how trtllm-bench and MLPerf Offline
    measure): `requests` identical requests go through in waves of `batch`; the last wave is
    partial, so a run of a few waves loses a visible share to it."""
    full = np.floor(requests / batch)
    rest = requests - full * batch
    context = isl + osl / 2.0

    def wave(b: Arr) -> Arr:
        return osl * step_time(p, b, b * isl / osl, context, isl)

    seconds = full * wave(batch) + np.where(rest > 0, wave(np.maximum(rest, 1.0)), 0.0)
    return requests * osl / seconds / (p.n * p.pp)
