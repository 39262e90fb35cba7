"""Capacity planner: from megawatts and GPU racks to tokens/s, users served, €/Mtok and Wh/Mtok.

The main names are importable from here, lazily so that ``fabrique --help`` does not load
NumPy; the functions live in their modules::

    from fabrique.planner.estimate import Question, estimate
    answer = estimate(Question(gpu="H200", gpus=1, model="llama-3.1-70b", precision="fp8",
                               input_tokens=1000, output_tokens=1000, tpot_ms=50))

See docs/planner.md for how the model works.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Names, not modules: `estimate`, `sweep` and `calibrate` are modules here (import the function of
# the same name from them), so a lazy attribute of that name would be shadowed by the submodule.
_API = {
    "Question": "estimate", "Answer": "estimate", "SweepResult": "sweep",
    "load_scenario": "scenario", "plan_scenario": "scenario", "ScenarioResult": "scenario",
    "Factors": "calibrate",
    "accelerator": "catalog", "model": "catalog", "accelerators": "catalog", "models": "catalog",
    "PlannerError": "errors", "UnknownName": "errors", "ScenarioError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f"fabrique.planner.{_API[name]}"), name)
    raise AttributeError(f"module 'fabrique.planner' has no attribute {name!r}")
