"""The batch cap and token budget `trtllm-bench` picks when a run does not set them.

Published TensorRT-LLM throughput tables are made with `trtllm-bench`, which, without
`--max_batch_size` / `--max_num_tokens`, derives both from a rough KV-cache estimate
(tensorrt_llm/bench/build/tuning.py, `calc_engine_setting` and `finetune_setting`). That estimate
treats every model as multi-head attention over `num_key_value_heads` heads of `head_dim` (or
hidden / heads) — for MLA models such as DeepSeek-V3/R1 it overstates the cache ~25-fold, so
the benchmark runs with a batch far below what memory allows. Reproducing the rule is how the
planner reproduces those runs' batch sizes.
"""

from __future__ import annotations

import math

from fabrique.planner.catalog import BYTES, Accelerator, Model
from fabrique.planner.shapes import shape

GIB = 1024.0 ** 3


def bench_settings(acc: Accelerator, mdl: Model, precision: str, kv_cache: str, tp: int, pp: int,
                   input_tokens: int, output_tokens: int, kv_fraction: float) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) as trtllm-bench would choose them."""
    heads = max(tp, mdl.heads if mdl.mla is not None else mdl.kv_heads)
    head_size = mdl.hidden // mdl.heads if mdl.mla is not None else mdl.head_dim
    per_token = 2 * mdl.layers * heads * head_size * BYTES[kv_cache] / GIB
    engine = shape(mdl).params_total * BYTES[precision] / GIB
    available = acc.memory_gb * 1e9 / GIB * tp * pp - engine
    requests = available * kv_fraction / (per_token * (input_tokens + output_tokens))
    raw_bs = min(requests, 4096.0) / pp
    raw_tokens = min(raw_bs * (1 + input_tokens / output_tokens), 32768.0)
    if raw_bs < 256:
        max_bs = max(64, 32 * math.ceil(raw_bs / 32))
    elif raw_bs < 1024:
        max_bs = 128 * math.ceil(raw_bs / 128)
    else:
        max_bs = 256 * math.ceil(raw_bs / 256)
    if raw_tokens < 4096:
        max_tokens = max(2048, 256 * math.ceil(raw_tokens / 256))
    elif raw_tokens < 8192:
        max_tokens = 512 * math.ceil(raw_tokens / 512)
    else:
        max_tokens = 1024 * math.ceil(raw_tokens / 1024)
    return max_bs, max_tokens
