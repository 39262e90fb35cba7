"""The planner's errors: each a one-line message for a person (the CLI prints it as is)."""

from __future__ import annotations

from fabrique.errors import ConfigError, FabriqueError


class PlannerError(FabriqueError):
    """A planning question that cannot be answered as asked (unknown name, bad value)."""


class UnknownName(PlannerError):
    """A GPU or model name not in the catalog; the message lists the known ones, closest first."""


class ScenarioError(ConfigError):
    """A scenario file is wrong: the message names the file and the field."""
