"""Stage 3: keep the deployments the tenant's residency policy allows for this data class.

Each deployment of the model (and of its fallbacks) is judged: allowed in clear, allowed
only pseudonymized, or refused. When none is left the request is refused with 403
``residency_policy``, naming the rule, the data class and why each deployment failed it.
"""

from __future__ import annotations

from fabrique.errors import ResidencyRefused
from fabrique.pipeline.context import RequestContext
from fabrique.policy.residency import Mode, judge, rule_text
from fabrique.routing import Deployment


async def decide(ctx: RequestContext) -> None:
    assert ctx.group is not None and ctx.policy is not None
    table = ctx.gateway.table
    groups = [ctx.group, *(g for name in ctx.group.fallbacks if (g := table.get(name)))]
    modes: dict[Deployment, Mode] = {}
    refused: list[str] = []
    for group in groups:
        for dep in group.deployments:
            mode, why = judge(ctx.policy, ctx.data_class, ctx.floor, dep.residency)
            if mode is None:
                refused.append(f"{dep.name} ({dep.residency.describe()}): {why}")
            else:
                modes[dep] = mode
    rule = rule_text(ctx.policy, ctx.data_class)
    if not modes:
        ctx.decide("decide", "refused", rule)
        found = f" ({ctx.class_reason})" if ctx.class_reason else ""
        raise ResidencyRefused(
            f"This request holds {ctx.data_class} data{found} and {rule}; no deployment of the "
            f"model '{ctx.model}' qualifies: {'; '.join(refused)}. Ask for a model served "
            "within these bounds, or have the operator change the policy.")
    ctx.modes = modes
    clear = sum(m == "clear" for m in modes.values())
    outcome = "allowed" if clear == len(modes) else ("pseudonymize" if not clear else "mixed")
    ctx.decide("decide", outcome, f"{rule}: {clear} deployment(s) in clear, "
               f"{len(modes) - clear} pseudonymized, {len(refused)} refused")
