"""The simulated engine's timing profile, taken from the planner's model: so a gateway in front
of `fabrique simulate` behaves like the planned deployment, and what it measures can be fed
back to `fabrique plan calibrate` (plan → serve → measure → recalibrate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fabrique.planner.perf import Params, curve, max_batch


@dataclass(frozen=True)
class SimTiming:
    decode_ms: float       # TPOT of a lone request
    prefill_tps: float     # prompt tokens per second of a lone request's prefill
    ttft_ms: float         # fixed part of TTFT
    slowdown: float        # TPOT stretch per extra running request (linear fit)
    fitted_up_to: int      # concurrency the linear fit covers

    def command(self) -> str:
        return (f"fabrique simulate --decode-ms {self.decode_ms:.3f} --prefill-tps "
                f"{self.prefill_tps:.0f} --ttft-ms {self.ttft_ms:.3f} --slowdown {self.slowdown:.5f}")


def sim_timing(p: Params, input_tokens: int, output_tokens: int, up_to: int = 64) -> SimTiming:
    """Fit the simulator's model (TTFT = (ttft + prompt/prefill_tps) x s, TPOT = decode x s,
    s = 1 + slowdown x (running - 1)) to the planner's curve from 1 to `up_to` requests."""
    isl, osl = np.array(float(input_tokens)), np.array(float(output_tokens))
    top = int(min(up_to, max(float(max_batch(p, isl, osl)), 1.0)))
    batch = np.arange(1.0, top + 1.0)
    c = curve(p, batch, isl, osl)
    tpot = c.tpot_s * 1e3
    extra = batch - 1.0
    stretch = tpot / tpot[0] - 1.0
    slowdown = float((extra * stretch).sum() / (extra ** 2).sum()) if top > 1 else 0.0
    wait = 0.5 * float(tpot[0])  # the planner's TTFT waits half a step before the prompt
    prefill_s = max(float(c.ttft_s[0]) - wait / 1e3, 1e-6)
    return SimTiming(decode_ms=float(tpot[0]), prefill_tps=input_tokens / prefill_s, ttft_ms=wait,
                     slowdown=max(slowdown, 0.0), fitted_up_to=top)
