"""Scenario files: a site (power or GPU count), its economics, a workload and user demand, and
the deployments sharing it. Errors name the file, the line and the field."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fabrique.planner import catalog, facility
from fabrique.planner.capacity import Demand, users_served
from fabrique.planner.economics import Costs, per_mtok
from fabrique.planner.errors import PlannerError, ScenarioError
from fabrique.planner.estimate import Question, estimate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FacilitySpec(_Model):
    accelerator: str = Field(description="Accelerator/system name from `fabrique plan list`.")
    grid_mw: float | None = Field(None, gt=0, description="Grid power of the site (MW).")
    gpus: int | None = Field(None, ge=1, description="Or: the number of GPUs (the power follows).")
    pue: float = Field(1.2, ge=1.0, le=3.0, description="Power usage effectiveness.")
    overhead: float = Field(0.10, ge=0, lt=1,
                            description="Share of IT power outside the GPU racks (storage, network).")

    @model_validator(mode="after")
    def _one_size(self) -> FacilitySpec:
        if (self.grid_mw is None) == (self.gpus is None):
            raise ValueError("give exactly one of grid_mw or gpus")
        return self


class EconomicsSpec(_Model):
    capex_eur_per_system: float | None = Field(
        None, gt=0, description="Price of one system (default: the catalog's estimate).")
    rent_eur_per_gpu_hour: float | None = Field(
        None, gt=0, description="Renting instead of owning: € per GPU-hour, energy included.")
    amortization_years: float = Field(4.0, gt=0)
    maintenance_per_year: float = Field(0.05, ge=0, description="Share of capex per year.")
    energy_eur_per_mwh: float = Field(90.0, ge=0)
    utilization: float = Field(0.6, gt=0, le=1, description="Share of hours at planned throughput.")
    idle_power_share: float = Field(0.3, ge=0, le=1)
    grid: str = Field("FR", description="Grid for carbon intensity (FR, DE, EU … see grids.yaml).")
    gco2e_per_kwh: float | None = Field(None, ge=0, description="Overrides `grid`.")


class WorkloadSpec(_Model):
    input_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    tpot_ms: float | None = Field(None, gt=0)
    ttft_ms: float | None = Field(None, gt=0)


class DemandSpec(_Model):
    requests_per_day: float = Field(gt=0, description="Per user or agent.")
    peak_factor: float = Field(2.0, ge=1.0)
    active_days_per_month: float = Field(22.0, gt=0, le=31)
    users: float | None = Field(None, gt=0, description="Users to serve: each deployment then "
                                "also says the GPUs and grid MW this many users need.")


class DeploymentSpec(_Model):
    name: str | None = None
    model: str
    precision: str = "fp8"
    gpus_per_replica: int = Field(8, ge=1)
    pipeline_stages: int = Field(1, ge=1, description="Stages the replica's GPUs form.")
    kv_cache: str | None = Field(None, description="KV-cache precision (default from weights).")
    engine_settings: dict[str, float | bool] = Field(
        default_factory=dict, description="Overrides of the engine profile (see engines.yaml), "
        "e.g. {max_batch: 256, attention_dp_balance: true}.")
    share: float = Field(1.0, gt=0, le=1, description="Share of the site's GPUs.")
    engine: str = "trtllm"
    parallel: str = "auto"


class Scenario(_Model):
    name: str
    facility: FacilitySpec
    economics: EconomicsSpec = EconomicsSpec()
    workload: WorkloadSpec
    demand: DemandSpec | None = None
    deployments: list[DeploymentSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _shares(self) -> Scenario:
        if sum(d.share for d in self.deployments) > 1.0 + 1e-9:
            raise ValueError("deployments: the shares add up to more than 1")
        return self


@dataclass
class DeploymentResult:
    name: str
    model: str
    precision: str
    gpus: int
    replicas: int
    fits: bool
    note: str | None
    tokens_per_s_per_gpu: float
    site_tokens_per_s: float
    ttft_ms: float
    tpot_ms: float
    batch: int
    users: float
    gpus_for_users: int | None
    mw_for_users: float | None
    eur_per_mtok: float
    eur_per_user_month: float
    eur_per_gpu_hour: float
    wh_per_mtok: float
    gco2e_per_mtok: float
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("curve")
        return out


@dataclass
class ScenarioResult:
    name: str
    accelerator: str
    status: str
    site: facility.Site
    gco2e_per_kwh: float
    deployments: list[DeploymentResult]

    def facility_line(self) -> str:
        s = self.site
        status = "" if self.status == "shipping" else f" ({self.status.upper()}: not measured)"
        power = (f"{s.grid_mw:,.1f} MW from the grid (IT {s.it_mw:,.1f} MW" if s.grid_mw >= 1
                 else f"{s.grid_mw * 1e3:,.0f} kW from the grid (IT {s.it_mw * 1e3:,.0f} kW")
        return (f"{s.gpus:,} × {self.accelerator}{status} in {s.systems:,} systems; "
                f"{power}, PUE {s.pue:g}); "
                f"grid {self.gco2e_per_kwh:g} gCO2e/kWh")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "accelerator": self.accelerator, "status": self.status,
                "site": {**asdict(self.site), "kw_per_gpu": self.site.kw_per_gpu},
                "gco2e_per_kwh": self.gco2e_per_kwh,
                "deployments": [d.to_dict() for d in self.deployments]}


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; errors name the file, line and field."""
    from fabrique.config import _dotted, _line_of
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping (name, facility, workload, …)")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = list(err["loc"])
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        raise ScenarioError(f"{where}: {_dotted(loc) or '(top level)'}: "
                            f"{err['msg'].removeprefix('Value error, ')}") from None
    _check_names(scenario, path, root)
    return scenario


def _check_names(s: Scenario, path: Path, root: yaml.Node | None) -> None:
    from fabrique.config import _line_of
    checks: list[tuple[list[Any], Any]] = [(["facility", "accelerator"], lambda: catalog.accelerator(
        s.facility.accelerator))]
    for i, d in enumerate(s.deployments):
        checks += [(["deployments", i, "model"], lambda d=d: catalog.model(d.model)),
                   (["deployments", i, "precision"], lambda d=d: catalog.precision(d.precision))]
        if d.kv_cache is not None:
            checks.append((["deployments", i, "kv_cache"], lambda d=d: catalog.precision(d.kv_cache)))
        for key in d.engine_settings:
            checks.append((["deployments", i, "engine_settings", key],
                           lambda key=key: _engine_setting(key)))
    if s.economics.gco2e_per_kwh is None:
        checks.append((["economics", "grid"], lambda: grid_intensity(s.economics.grid)))
    for loc, check in checks:
        try:
            check()
        except PlannerError as exc:
            line = _line_of(root, loc)
            field_ = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
            raise ScenarioError(f"{path}:{line or '?'}: {field_.replace('.[', '[')}: "
                                f"{exc.message}") from None


def _engine_setting(key: str) -> None:
    from fabrique.planner.engines import Engine
    known = [f for f in Engine.__dataclass_fields__ if f != "name"]
    if key not in known:
        raise PlannerError(f"unknown engine setting {key!r}; known: {', '.join(known)}")


def grid_intensity(grid: str) -> float:
    from fabrique.planner.catalog import _read
    grids = _read("grids.yaml")["grids"]
    key = grid.strip().upper()
    if key not in grids:
        raise PlannerError(f"unknown grid {grid!r}; known: {', '.join(grids)}")
    return float(grids[key]["value"])


def plan_scenario(s: Scenario) -> ScenarioResult:
    acc = catalog.accelerator(s.facility.accelerator)
    f = s.facility
    site = (facility.from_power(acc, f.grid_mw, f.pue, f.overhead) if f.grid_mw is not None
            else facility.from_gpus(acc, f.gpus or 0, f.pue, f.overhead))
    e = s.economics
    intensity = e.gco2e_per_kwh if e.gco2e_per_kwh is not None else grid_intensity(e.grid)
    capex = (e.capex_eur_per_system or acc.capex_eur_per_system) / acc.gpus_per_system
    costs = Costs(capex_eur_per_gpu=capex, amortization_years=e.amortization_years,
                  maintenance_per_year=e.maintenance_per_year, energy_eur_per_mwh=e.energy_eur_per_mwh,
                  utilization=e.utilization, idle_power_share=e.idle_power_share,
                  gco2e_per_kwh=intensity, rent_eur_per_gpu_hour=e.rent_eur_per_gpu_hour)
    results = [_deployment(d, acc, site, costs, s) for d in s.deployments]
    return ScenarioResult(name=s.name, accelerator=acc.name, status=acc.status, site=site,
                          gco2e_per_kwh=intensity, deployments=results)


def _deployment(d: DeploymentSpec, acc: catalog.Accelerator, site: facility.Site, costs: Costs,
                s: Scenario) -> DeploymentResult:
    w = s.workload
    replicas = int(site.gpus * d.share) // d.gpus_per_replica
    gpus = replicas * d.gpus_per_replica
    a = estimate(Question(gpu=acc.name, gpus=d.gpus_per_replica, model=d.model, precision=d.precision,
                          input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                          tpot_ms=w.tpot_ms, ttft_ms=w.ttft_ms, engine=d.engine,
                          parallel=d.parallel, pp=d.pipeline_stages, kv_cache=d.kv_cache,
                          engine_settings=tuple(d.engine_settings.items())),
                 with_curve=True)
    name = d.name or f"{a.model} {a.precision} ×{d.gpus_per_replica}"
    usable = a.fits and a.meets_targets
    tput = a.tokens_per_s_per_gpu if usable else 0.0
    unit = per_mtok(costs, tput, site.kw_per_gpu)
    site_tps = tput * gpus
    demand = (Demand(s.demand.requests_per_day, w.output_tokens, w.input_tokens, s.demand.peak_factor,
                     s.demand.active_days_per_month) if s.demand else None)
    users = users_served(site_tps, demand) if demand else 0.0
    monthly = gpus * unit.eur_per_gpu_hour * HOURS_PER_MONTH
    need: int | None = None
    if demand is not None and s.demand is not None and s.demand.users and tput > 0:
        # whole replicas that cover the users' peak demand
        replicas_needed = math.ceil(s.demand.users * demand.peak_tokens_per_s
                                    / (tput * d.gpus_per_replica))
        need = replicas_needed * d.gpus_per_replica
    return DeploymentResult(
        name=name, model=a.model, precision=a.precision, gpus=gpus, replicas=replicas, fits=usable,
        note=a.reason, tokens_per_s_per_gpu=tput, site_tokens_per_s=site_tps, ttft_ms=a.ttft_ms,
        tpot_ms=a.tpot_ms, batch=a.batch, users=users, gpus_for_users=need,
        mw_for_users=need * site.kw_per_gpu / 1e3 if need is not None else None,
        eur_per_mtok=unit.eur_per_mtok,
        eur_per_user_month=monthly / users if users > 0 else float("inf"),
        eur_per_gpu_hour=unit.eur_per_gpu_hour, wh_per_mtok=unit.wh_per_mtok,
        gco2e_per_mtok=unit.gco2e_per_mtok, curve=a.curve)


HOURS_PER_MONTH = 730.0
