"""PNG charts of a planned scenario: each deployment's throughput against TPOT and against TTFT
(batch size growing along the curve), and its cost per million output tokens against the TPOT
target."""

from __future__ import annotations

from pathlib import Path

from fabrique.planner.errors import PlannerError
from fabrique.planner.scenario import ScenarioResult


def write_plot(result: ScenarioResult, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    for d in result.deployments:
        if not d.curve:
            continue
        tpot = np.array([p["tpot_ms"] for p in d.curve])
        ttft = np.array([p["ttft_ms"] for p in d.curve])
        tput = np.array([p["tokens_per_s_per_gpu"] for p in d.curve])
        left.plot(tpot, tput, marker=".", label=d.name)
        middle.plot(ttft, tput, marker=".", label=d.name)
        if d.tokens_per_s_per_gpu > 0:
            # The best throughput any batch with TPOT <= target reaches; €/Mtok scales as 1/throughput.
            best = np.maximum.accumulate(tput[np.argsort(tpot)])
            cost = d.eur_per_mtok * d.tokens_per_s_per_gpu / best
            right.plot(np.sort(tpot), cost, label=d.name)
    left.set(xlabel="TPOT (ms per output token)", ylabel="output tokens/s per GPU",
             title="Throughput against TPOT (batch sizes along the curve)")
    middle.set(xlabel="TTFT (ms)", ylabel="output tokens/s per GPU",
               title="Throughput against TTFT")
    right.set(xlabel="TPOT target (ms)", ylabel="€ per million output tokens", yscale="log",
              title="Cost against the latency target")
    for ax in (left, middle, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(result.name)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise PlannerError(f"{path}: cannot write the plot ({exc.strerror})") from None
    except ValueError as exc:  # matplotlib: "Format 'txt' is not supported"
        raise PlannerError(f"{path}: cannot write the plot ({exc}); use .png, .svg or .pdf") from None
    finally:
        plt.close(fig)
