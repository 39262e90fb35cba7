"""The ``fabrique plan`` command group. Thin: parse, call the planner, print.

Heavy imports (NumPy, Rich tables, matplotlib) happen inside the commands, so ``fabrique --help``
stays fast. ``fabrique plan FILE.yaml`` is short for ``fabrique plan run FILE.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from fabrique.errors import ConfigError, FabriqueError


class _PlanGroup(TyperGroup):
    """Route ``plan SCENARIO.yaml`` to ``plan run SCENARIO.yaml``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


plan_app = typer.Typer(
    cls=_PlanGroup, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
    help="Capacity planning: tokens/s, latency, users, € and Wh per Mtok for a site or a GPU.\n\n"
    "Examples: `fabrique plan examples/plan/44mw-gb200.yaml`, "
    "`fabrique plan estimate --gpu H200 --gpus 1 --model llama-3.1-70b --precision fp8 "
    "--input-tokens 1000 --output-tokens 1000 --tpot-ms 50 --json`")


def _fail(error: FabriqueError) -> typer.Exit:
    typer.echo(f"fabrique: {error.message}", err=True)
    return typer.Exit(2 if isinstance(error, ConfigError) else 1)


def _json(obj: Any) -> None:
    import orjson
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


def _setting(item: str) -> tuple[str, float | bool]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise FabriqueError(f"--set {item!r}: expected KEY=VALUE")
    value = raw.strip().lower()
    if value in ("true", "false"):
        return key.strip(), value == "true"
    try:
        return key.strip(), float(value)
    except ValueError:
        raise FabriqueError(f"--set {item!r}: the value must be a number, true or false") from None


@plan_app.command()
def estimate(
    gpu: Annotated[str, typer.Option(help="Accelerator (H100, H200, B200, GB200, B300, GB300, "
                                          "VR200-NVL144).")],
    model: Annotated[str, typer.Option(help="Model (llama-3.1-70b, mistral-large-2, deepseek-r1 …).")],
    input_tokens: Annotated[int, typer.Option(help="Prompt tokens per request.")],
    output_tokens: Annotated[int, typer.Option(help="Generated tokens per request.")],
    gpus: Annotated[int, typer.Option(help="GPUs serving one model replica.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline stages (each of gpus/pp GPUs; stages beyond "
                                         "one NVLink domain hand off over the network).")] = 1,
    precision: Annotated[str, typer.Option(help="Weights: fp16 (bf16), fp8 or fp4.")] = "fp8",
    kv_cache: Annotated[str | None, typer.Option(
        help="KV-cache precision: fp16, fp8 or fp4 (default: fp16 with fp16 weights, else fp8).",
        show_default=False)] = None,
    tpot_ms: Annotated[float | None, typer.Option(help="Target time per output token.",
                                                  show_default=False)] = None,
    ttft_ms: Annotated[float | None, typer.Option(help="Target time to first token.",
                                                  show_default=False)] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Load as running requests per replica (instead of the best batch).",
        show_default=False)] = None,
    rate: Annotated[float | None, typer.Option(
        help="Load as arriving requests per second per replica.", show_default=False)] = None,
    engine: Annotated[str, typer.Option(help="Serving engine profile: trtllm or vllm.")] = "trtllm",
    parallel: Annotated[str, typer.Option(
        help="auto, tp (tensor-parallel) or dep (attention data-parallel + expert-parallel, MoE).")
    ] = "auto",
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="Override an engine setting, KEY=VALUE (repeatable), e.g. --set max_batch=256 "
        "--set attention_dp_balance=true.", show_default=False)] = None,
    calibration: Annotated[Path | None, typer.Option(
        help="Apply a deployment's factors (the JSON of `fabrique plan calibrate --json`).",
        show_default=False)] = None,
    curve: Annotated[bool, typer.Option("--curve", help="Include the throughput-latency curve.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Throughput per GPU and latency of one model on one kind of GPU: at the best batch that meets
    the TTFT/TPOT targets, or at maximum throughput when none is given; or at a given load
    (--concurrency, or --rate in requests/s per replica).

    Example: `fabrique plan estimate --gpu H200 --gpus 1 --model llama-3.1-70b --precision fp8
    --input-tokens 1000 --output-tokens 1000 --tpot-ms 50 --json`
    """
    from fabrique.planner.calibrate import load_factors
    from fabrique.planner.estimate import Question
    from fabrique.planner.estimate import estimate as run_estimate
    try:
        factors = load_factors(calibration) if calibration is not None else None
        overrides = tuple(_setting(item) for item in setting or [])
        answer = run_estimate(Question(gpu=gpu, gpus=gpus, model=model, precision=precision,
                                       input_tokens=input_tokens, output_tokens=output_tokens,
                                       tpot_ms=tpot_ms, ttft_ms=ttft_ms, engine=engine,
                                       parallel=parallel, concurrency=concurrency, rate=rate,
                                       factors=factors, pp=pp, kv_cache=kv_cache,
                                       engine_settings=overrides),
                                   with_curve=curve)
    except FabriqueError as error:
        raise _fail(error) from None
    if as_json:
        _json(answer.to_dict(with_curve=curve))
        return
    from fabrique.planner.report import print_estimate
    print_estimate(answer)


@plan_app.command()
def validate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Predicted against measured, for every published result in the validation table.

    Example: `fabrique plan validate`
    """
    from fabrique.planner.validate import rows, summary
    table = rows()
    if as_json:
        _json({"summary": summary(table),
               "rows": [{**r.__dict__, "error": r.error} for r in table]})
        return
    from fabrique.planner.report import print_validation
    print_validation(table, summary(table))


GpuOpt = Annotated[str, typer.Option("--gpu", help="Accelerator (see `fabrique plan list`).")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model (see `fabrique plan list`).")]
GpusOpt = Annotated[int, typer.Option("--gpus", help="GPUs per model replica.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp16 (bf16), fp8 or fp4.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="trtllm or vllm.")]


@plan_app.command()
def calibrate(
    records: Annotated[Path, typer.Argument(help="Usage records, JSON lines: input_tokens, "
                                            "output_tokens, ttft_ms, tpot_ms, concurrency.",
                                            show_default=False)],
    gpu: GpuOpt, model: ModelOpt, gpus: GpusOpt = 1, precision: PrecisionOpt = "fp8",
    engine: EngineOpt = "trtllm",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit a deployment's compute, bandwidth and overhead factors to its measured requests
    (TTFT and TPOT at the concurrency each ran with); `--json` output feeds
    `fabrique plan estimate --calibration`.

    Example: `fabrique plan calibrate usage.jsonl --gpu H200 --model llama-3.1-70b --json >
    h200-70b.json`
    """
    from fabrique.planner.calibrate import calibrate as fit
    from fabrique.planner.calibrate import read_records
    from fabrique.planner.estimate import Question, params_for
    try:
        p = params_for(Question(gpu=gpu, gpus=gpus, model=model, precision=precision,
                                input_tokens=1, output_tokens=1, engine=engine))
        result = fit(p, read_records(records))
    except FabriqueError as error:
        raise _fail(error) from None
    if as_json:
        _json(result.to_dict())
        return
    f = result.factors
    typer.echo(f"{records}: {result.records} requests in {result.groups} groups; factors: compute "
               f"{f.compute:g}, bandwidth {f.bandwidth:g}, overhead {f.overhead:g}; RMS log error "
               f"{result.rms_log_error_before:.3f} -> {result.rms_log_error_after:.3f}")


@plan_app.command("sim-profile")
def sim_profile(
    gpu: GpuOpt, model: ModelOpt,
    input_tokens: Annotated[int, typer.Option(help="Prompt tokens per request.")],
    output_tokens: Annotated[int, typer.Option(help="Generated tokens per request.")],
    gpus: GpusOpt = 1, precision: PrecisionOpt = "fp8", engine: EngineOpt = "trtllm",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The `fabrique simulate` flags that make the simulated engine time requests as the
    planner predicts this deployment would (up to 64 concurrent requests).

    Example: `$(fabrique plan sim-profile --gpu H200 --model llama-3.1-70b --input-tokens 500
    --output-tokens 200) --port 8000`
    """
    from dataclasses import asdict

    from fabrique.planner.estimate import Question, params_for
    from fabrique.planner.simprofile import sim_timing
    try:
        q = Question(gpu=gpu, gpus=gpus, model=model, precision=precision,
                     input_tokens=input_tokens, output_tokens=output_tokens, engine=engine)
        timing = sim_timing(params_for(q), input_tokens, output_tokens)
    except FabriqueError as error:
        raise _fail(error) from None
    if as_json:
        _json({**asdict(timing), "command": timing.command()})
    else:
        typer.echo(timing.command())


@plan_app.command("list")
def list_catalog() -> None:
    """The accelerators, models and engines the planner knows, with their key numbers.

    Example: `fabrique plan list`
    """
    from fabrique.planner.report import print_catalog
    print_catalog()


@plan_app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (one row per deployment).")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="Write a PNG: throughput-latency Pareto and cost against the TPOT target.",
        show_default=False)] = None,
) -> None:
    """Plan a site from a scenario file: GPUs from megawatts, tokens/s under latency targets,
    users served, €/Mtok, Wh/Mtok and gCO2e/Mtok. `fabrique plan FILE.yaml` does the same.

    Example: `fabrique plan examples/plan/44mw-gb200.yaml --plot site.png`
    """
    from fabrique.planner.scenario import load_scenario, plan_scenario
    try:
        result = plan_scenario(load_scenario(scenario))
        if plot is not None:
            from fabrique.planner.plot import write_plot
            write_plot(result, plot)
    except FabriqueError as error:
        raise _fail(error) from None
    from fabrique.planner import report
    if as_json:
        _json(result.to_dict())
    elif as_csv:
        sys.stdout.write(report.to_csv(result))
    else:
        report.print_scenario(result)
    if plot is not None and not (as_json or as_csv):
        typer.echo(f"plot: {plot}")
