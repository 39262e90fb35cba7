"""Residency rules: a pure function of policy, data class and deployment labels."""

from __future__ import annotations

import pytest

from fabrique.config import ClassRule, Labels, PolicyConfig
from fabrique.policy.residency import BUILTIN_DEFAULT, EEA, Residency, judge, refusal, rule_text

FR_SELF = Residency("FR", "self-hosted", False)
DE_CLOUD = Residency("DE", "eu-cloud", False)
FR_US_CLOUD = Residency("FR", "non-eu-cloud", True)  # a US company's Paris region
US_CLOUD = Residency("US", "non-eu-cloud", True)
UNKNOWN = Residency(None, None, True)


def test_labels_inherit_from_the_provider_and_exposure_follows_hosting():
    provider = Labels(jurisdiction="IE", hosting="non-eu-cloud")
    assert Residency.of(provider, Labels()) == Residency("IE", "non-eu-cloud", True)
    assert Residency.of(provider, Labels(jurisdiction="FR", hosting="eu-cloud")) == DE_CLOUD.__class__(
        "FR", "eu-cloud", False)
    assert Residency.of(Labels(), Labels()) == UNKNOWN
    eu = Labels(jurisdiction="FR", hosting="eu-cloud", non_eu_law_exposure=False)
    assert Residency.of(eu, Labels(hosting="non-eu-cloud")).non_eu_law_exposure is True
    explicit = Labels(jurisdiction="FR", hosting="eu-cloud", non_eu_law_exposure=True)
    assert Residency.of(explicit, Labels()).non_eu_law_exposure is True
    assert {"NO", "IS", "LI", "FR", "DE"} <= EEA and "CH" not in EEA and "GB" not in EEA


@pytest.mark.parametrize(("where", "personal", "sensitive"), [
    (FR_SELF, "clear", "clear"),
    (DE_CLOUD, "clear", "clear"),
    (FR_US_CLOUD, "clear", None),  # in the EEA, but its operator answers to non-EU law
    (US_CLOUD, None, None),
    (UNKNOWN, None, None),  # unlabelled deployments get nothing personal
])
def test_the_default_policy(where, personal, sensitive):
    assert judge(BUILTIN_DEFAULT, "internal", "internal", where)[0] == "clear"
    assert judge(BUILTIN_DEFAULT, "personal", "internal", where)[0] == personal
    assert judge(BUILTIN_DEFAULT, "sensitive", "internal", where)[0] == sensitive


def test_pseudonymize_only_when_what_is_left_may_go_there_in_clear():
    policy = PolicyConfig(name="p", personal=ClassRule(jurisdictions=["EEA"], outside="pseudonymize"),
                          internal=ClassRule(jurisdictions=["EU"]))
    assert judge(policy, "personal", "public", US_CLOUD)[0] == "pseudonymized"
    mode, why = judge(policy, "personal", "internal", US_CLOUD)
    assert mode is None and "it would be internal data, also not allowed there" in why
    # The remainder is personal itself (declared, or an image): nothing to pseudonymize.
    assert judge(policy, "personal", "personal", US_CLOUD)[0] is None


def test_refusals_say_why():
    rule = ClassRule(jurisdictions=["FR", "BE"], hostings=["self-hosted"], non_eu_law_exposure=False)
    assert refusal(rule, DE_CLOUD) == "its jurisdiction (DE) is not in FR, BE"
    assert refusal(rule, Residency("FR", "eu-cloud", False)) == "its hosting (eu-cloud) is not self-hosted"
    assert refusal(rule, Residency("FR", "self-hosted", True)) == (
        "its operator is exposed to non-EU access laws")
    assert refusal(rule, FR_SELF) is None
    assert rule_text(BUILTIN_DEFAULT, "sensitive") == (
        "policy 'default' keeps sensitive data in EEA jurisdictions on self-hosted or eu-cloud "
        "hosting away from operators exposed to non-EU access laws")
    assert rule_text(BUILTIN_DEFAULT, "public") == "policy 'default' keeps public data anywhere"


def test_bad_jurisdictions_are_refused_in_config():
    with pytest.raises(ValueError, match="'France' is not an ISO 3166-1 country code"):
        ClassRule(jurisdictions=["France"])
    with pytest.raises(ValueError, match="did you mean FR"):
        Labels(jurisdiction="fr")
    with pytest.raises(ValueError, match="ISO writes GR"):
        Labels(jurisdiction="EL")
    with pytest.raises(ValueError, match="at least 1"):
        ClassRule(jurisdictions=[])


def test_every_class_up_to_the_requests_must_allow_it():
    # Rules out of order: internal data only in France, personal data in the whole EEA.
    policy = PolicyConfig(name="p", internal=ClassRule(jurisdictions=["FR"]))
    assert judge(policy, "internal", "internal", DE_CLOUD)[0] is None
    mode, why = judge(policy, "personal", "internal", DE_CLOUD)
    assert mode is None and why == "for internal data, its jurisdiction (DE) is not in FR"
    assert judge(policy, "personal", "internal", FR_SELF)[0] == "clear"
    # Sensitive data is personal data too: the personal rule applies to it as well.
    strict = PolicyConfig(name="s", personal=ClassRule(jurisdictions=["FR"]),
                          sensitive=ClassRule(jurisdictions=["EEA"]))
    mode, why = judge(strict, "sensitive", "internal", DE_CLOUD)
    assert mode is None and why == "for personal data, its jurisdiction (DE) is not in FR"
