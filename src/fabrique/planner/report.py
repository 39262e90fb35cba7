"""Rich tables and CSV for the planner's answers (terminal output only; no computing here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from fabrique.console import console as _console

if TYPE_CHECKING:
    from fabrique.planner.estimate import Answer
    from fabrique.planner.scenario import ScenarioResult
    from fabrique.planner.validate import Row



def print_estimate(a: Answer) -> None:
    console = _console()
    title = f"{a.model} on {a.gpus}× {a.gpu} ({a.precision}, {a.parallel}, {a.engine})"
    if a.status != "shipping":
        title += f" — {a.status.upper()}: vendor announcements and estimates, not measurements"
    if not a.fits:
        console.print(f"[bold]{title}[/bold]: does not fit — {a.reason}")
        return
    t = Table(title=title)
    for col in ("tokens/s per GPU", "tokens/s", "TTFT ms", "TPOT ms", "batch", "max batch",
                "weights GB/GPU", "KV cache GB"):
        t.add_column(col, justify="right")
    t.add_row(f"{a.tokens_per_s_per_gpu:,.0f}", f"{a.tokens_per_s:,.0f}", f"{a.ttft_ms:,.0f}",
              f"{a.tpot_ms:.1f}", str(a.batch), str(a.max_batch), f"{a.weights_gb_per_gpu:.1f}",
              f"{a.kv_cache_gb:.0f}")
    console.print(t)
    if a.reason:
        console.print(f"note: {a.reason}")


def print_validation(rows: list[Row], summary: dict[str, float | int]) -> None:
    t = Table(title="Predicted against published measurements (output tokens/s per GPU)")
    for col in ("GPU", "model", "prec", "GPUs", "ISL/OSL", "measured", "predicted", "error"):
        t.add_column(col, justify="right" if col in ("GPUs", "measured", "predicted", "error") else "left")
    for r in rows:
        t.add_row(r.gpu, r.model, r.precision, f"{r.gpus} {r.parallel}",
                  f"{r.input_tokens}/{r.output_tokens}", f"{r.measured_per_gpu:,.0f}",
                  f"{r.predicted_per_gpu:,.0f}", f"{r.error:+.0%}")
    console = _console()
    console.print(t)
    median_ok = summary["median_abs_error"] <= 0.15
    max_ok = summary["max_abs_error"] <= 0.35
    console.print(f"{summary['rows']} rows, {summary['accelerators']} accelerators, "
                  f"{summary['models']} models: median |error| {summary['median_abs_error']:.1%}, "
                  f"max {summary['max_abs_error']:.1%}, {summary['within_35pct']} within 35 %. "
                  f"Targets: median <= 15 % {'met' if median_ok else 'MISSED'}, none over 35 % "
                  f"{'met' if max_ok else 'MISSED'}. Sources: "
                  "src/fabrique/planner/data/validation.yaml")


def print_catalog() -> None:
    from fabrique.planner import catalog
    from fabrique.planner.engines import engines
    console = _console()
    t = Table(title="Accelerators (per GPU, dense TFLOPS)")
    for col in ("name", "status", "BF16", "FP8", "FP4", "HBM GB", "TB/s", "NVLink domain", "W"):
        t.add_column(col)
    for a in catalog.accelerators():
        t.add_row(a.name, a.status, f"{a.tflops['fp16']:,.0f}", f"{a.tflops['fp8']:,.0f}",
                  f"{a.tflops['fp4']:,.0f}" if a.native_fp4 else "—", f"{a.memory_gb:g}",
                  f"{a.memory_bw_tbs:g}", str(a.nvlink_domain), f"{a.gpu_power_w:,.0f}")
    console.print(t)
    t = Table(title="Models")
    for col in ("name", "params B", "active B", "layers", "hidden", "heads/KV", "attention", "experts",
                "also answers to"):
        t.add_column(col)
    aliases = catalog.model_aliases()
    for m in catalog.models():
        experts = f"{m.moe.experts} (top {m.moe.active})" if m.moe else "—"
        t.add_row(m.name, f"{m.params_b:g}", f"{m.active_params_b or m.params_b:g}", str(m.layers),
                  str(m.hidden), f"{m.heads}/{m.kv_heads}", m.attention, experts,
                  ", ".join(aliases.get(m.name, [])))
    console.print(t)
    console.print("engines: " + ", ".join(e.name for e in engines()))


def print_scenario(result: ScenarioResult) -> None:
    console = _console()
    console.print(f"[bold]{result.name}[/bold]")
    console.print(result.facility_line())
    perf = Table(title="Throughput and latency (output tokens)")
    for col in ("deployment", "GPUs", "tok/s per GPU", "site tok/s", "TTFT ms", "TPOT ms", "batch"):
        perf.add_column(col, justify="left" if col == "deployment" else "right")
    money = Table(title="Users, cost, energy (per million output tokens)")
    for col in ("deployment", "users", "€/Mtok", "€/user/month", "€/GPU-hour", "Wh/Mtok", "gCO2e/Mtok"):
        money.add_column(col, justify="left" if col == "deployment" else "right")
    for d in result.deployments:
        if not d.fits:
            perf.add_row(d.name, f"{d.gpus:,}", "—", "—", "—", "—", "—")
            money.add_row(d.name, "—", "—", "—", f"{d.eur_per_gpu_hour:.2f}", "—", "—")
            continue
        perf.add_row(d.name, f"{d.gpus:,}", f"{d.tokens_per_s_per_gpu:,.0f}",
                     f"{d.site_tokens_per_s:,.0f}", f"{d.ttft_ms:,.0f}", f"{d.tpot_ms:.1f}",
                     str(d.batch))
        money.add_row(d.name, f"{d.users:,.0f}", f"{d.eur_per_mtok:.3f}", f"{d.eur_per_user_month:.2f}",
                      f"{d.eur_per_gpu_hour:.2f}", f"{d.wh_per_mtok:,.0f}", f"{d.gco2e_per_mtok:,.1f}")
    console.print(perf)
    console.print(money)
    for d in result.deployments:
        if d.gpus_for_users is not None and d.mw_for_users is not None:
            power = (f"{d.mw_for_users:,.2f} MW" if d.mw_for_users >= 1
                     else f"{d.mw_for_users * 1e3:,.1f} kW")
            console.print(f"{d.name}: the demand's users need {d.gpus_for_users:,} GPUs, "
                          f"{power} from the grid")
    for d in result.deployments:
        if d.note:
            console.print(f"{d.name}: {d.note}")


def to_csv(result: ScenarioResult) -> str:
    import csv
    import io
    out = io.StringIO()
    rows = [d.to_dict() for d in result.deployments]
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["name"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
