"""Where data may go: deployment labels, data classes and the rules of a residency policy.

A decision is a pure function of three things — the policy, the request's data class and
the deployment's labels — so that every verdict can be explained in one sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fabrique.config import DATA_CLASSES, ClassRule, Labels, PolicyConfig

# The 27 member states (ISO codes: Greece is GR, not the EU's own EL).
EU = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
EEA = EU | {"IS", "LI", "NO"}
RANK: dict[str, int] = {name: i for i, name in enumerate(DATA_CLASSES)}
ALL_HOSTINGS = frozenset({"self-hosted", "eu-cloud", "non-eu-cloud"})
Mode = Literal["clear", "pseudonymized"]

BUILTIN_DEFAULT = PolicyConfig(
    name="default",
    description="Personal data stays in the EU/EEA; special categories stay on EU/EEA "
    "infrastructure not exposed to non-EU access laws; nothing leaves pseudonymized.")


@dataclass(frozen=True, slots=True)
class Residency:
    """A deployment's labels, resolved: what a policy is decided on."""

    jurisdiction: str | None
    hosting: str | None
    non_eu_law_exposure: bool

    @classmethod
    def of(cls, provider: Labels, deployment: Labels) -> Residency:
        """The deployment's own labels, else its provider's."""
        jurisdiction = deployment.jurisdiction or provider.jurisdiction
        hosting = deployment.hosting or provider.hosting
        exposure = deployment.non_eu_law_exposure
        if exposure is None and deployment.hosting is None:  # a new hosting, a new operator
            exposure = provider.non_eu_law_exposure
        if exposure is None:  # not said: assume the worst where the operator is not European
            exposure = hosting in (None, "non-eu-cloud")
        return cls(jurisdiction, hosting, exposure)

    @property
    def in_eea(self) -> bool:
        return self.jurisdiction in EEA

    def describe(self) -> str:
        parts = [self.jurisdiction or "unknown jurisdiction", self.hosting or "unknown hosting"]
        if self.non_eu_law_exposure:
            parts.append("exposed to non-EU law")
        return ", ".join(parts)


def highest(classes: Iterable[str]) -> str:
    return max(classes, key=RANK.__getitem__)


def refusal(rule: ClassRule, where: Residency) -> str | None:
    """Why ``rule`` does not let data go to ``where`` in clear, or None when it does."""
    allowed = rule.jurisdictions
    if "*" not in allowed:
        j = where.jurisdiction
        inside = j is not None and (j in allowed or ("EEA" in allowed and j in EEA)
                                    or ("EU" in allowed and j in EU))
        if not inside:
            return f"its jurisdiction ({j or 'unknown'}) is not in {', '.join(allowed)}"
    if set(rule.hostings) != ALL_HOSTINGS and where.hosting not in rule.hostings:
        return f"its hosting ({where.hosting or 'unknown'}) is not {' or '.join(rule.hostings)}"
    if where.non_eu_law_exposure and not rule.non_eu_law_exposure:
        return "its operator is exposed to non-EU access laws"
    return None


def judge(policy: PolicyConfig, data_class: str, floor: str,
          where: Residency) -> tuple[Mode | None, str]:
    """How a request may go to a deployment: in clear, pseudonymized, or not at all (None),
    with the reason.

    A request holds data of its ``floor`` class and of its ``data_class`` (and sensitive
    data is personal data too), and each of those classes' rules must let it go there,
    whatever the policy's rules say of each other. ``floor`` is what is left once the
    personal values found are replaced by placeholders (the policy's default class, the
    class the client declared, or that of content that cannot be inspected): it must be
    allowed in clear; the classes above it may instead be replaced, where their rule says
    ``outside: pseudonymize``.
    """
    top = [name for name in ("personal", data_class) if RANK[floor] < RANK[name] <= RANK[data_class]]
    top = list(dict.fromkeys(top))  # the classes above the floor, each once
    why_not = refusal(policy.rule(floor), where)
    if why_not is not None:
        if not top and policy.rule(floor).outside == "pseudonymize":
            why_not += (f"; pseudonymized, it would still be {floor} data (as the client "
                        "declared it, or holding content that cannot be inspected)")
        elif top and policy.rule(data_class).outside == "pseudonymize":
            why_not += f"; pseudonymized, it would be {floor} data, also not allowed there"
        elif top:
            why_not = f"for {floor} data, {why_not}"
        return None, why_not
    replaced = ""
    for name in top:
        rule = policy.rule(name)
        why = refusal(rule, where)
        if why is not None:
            if rule.outside != "pseudonymize":
                return None, why if name == data_class else f"for {name} data, {why}"
            replaced = replaced or why
    return ("pseudonymized", replaced) if replaced else ("clear", "")


def rule_text(policy: PolicyConfig, data_class: str) -> str:
    """The rule in words, for a refusal: "policy 'default' keeps personal data in EEA"."""
    rule = policy.rule(data_class)
    bounds = []
    if "*" not in rule.jurisdictions:
        bounds.append(f"in {', '.join(rule.jurisdictions)} jurisdictions")
    if set(rule.hostings) != ALL_HOSTINGS:
        bounds.append(f"on {' or '.join(rule.hostings)} hosting")
    if not rule.non_eu_law_exposure:
        bounds.append("away from operators exposed to non-EU access laws")
    where = " ".join(bounds) or "anywhere"
    return f"policy '{policy.name}' keeps {data_class} data {where}"
