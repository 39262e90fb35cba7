"""The one object every stage reads and writes: ``RequestContext``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fabrique.config import PolicyConfig
    from fabrique.gateway import Gateway
    from fabrique.keys import Principal
    from fabrique.metering import Meter
    from fabrique.metering.control import Reservation
    from fabrique.policy.recognizers import Entity
    from fabrique.policy.residency import Mode
    from fabrique.policy.vault import Vault
    from fabrique.providers.base import SSEEvent, UpstreamResponse
    from fabrique.routing import Deployment, ModelGroup


@dataclass(slots=True)
class Decision:
    """One line of the decision trail: which stage decided what, and why."""

    stage: str
    outcome: str
    reason: str = ""


@dataclass(slots=True)
class Attempt:
    """One upstream call: where it went, how it ended, how long it took."""

    deployment: str
    outcome: str  # "ok", "retry:<why>", "fallback:<why>", "rejected"
    seconds: float


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request as it moves through the pipeline."""

    gateway: Gateway
    request_id: str
    endpoint: str  # "chat/completions", "completions" or "embeddings"
    body: dict[str, Any]
    principal: Principal
    received: float  # time.perf_counter() when the request arrived
    stream: bool = False
    model: str = ""
    group: ModelGroup | None = None
    deployment: Deployment | None = None
    upstream: UpstreamResponse | None = None
    first_event: SSEEvent | None = None
    usage: dict[str, Any] | None = None
    # The client did not ask for stream usage; Fabrique asked upstream and drops that chunk.
    usage_injected: bool = False
    upstream_s: float = 0.0  # time spent waiting for upstreams before the answer began
    upstream_started: float = 0.0  # perf_counter() when the call that answered was sent
    attempts: list[Attempt] = field(default_factory=list)
    charged: set[Deployment] = field(default_factory=set)  # breakers this request counted on
    decisions: list[Decision] = field(default_factory=list)
    # Sovereignty: set by classify, decide and protect.
    declared_class: str | None = None  # x-fabrique-data-class sent by the client
    session: str | None = None  # x-fabrique-session-id: placeholders stay the same across it
    agent: str | None = None  # metering.agent_header (x-fabrique-agent-id); the ledger's agent_id
    subject: str | None = None  # ledger.subject_header: whose key encrypts the payload
    policy: PolicyConfig | None = None
    data_class: str = ""
    floor: str = ""  # the class of what is left once personal values are pseudonymized
    entity_counts: dict[str, int] = field(default_factory=dict)  # by type, never values
    class_reason: str = ""  # what made the class: "EMAIL×2; cannot inspect image_url in …"
    scans: list[list[Entity]] = field(default_factory=list)  # per text slot, in walk order
    modes: dict[Deployment, Mode] | None = None  # the deployments the policy allows, and how
    protected_body: dict[str, Any] | None = None  # the body with placeholders
    vault: Vault | None = None
    pseudonymized: bool = False  # the answering deployment got the protected body
    # Set by pipeline.finish: the HTTP status and how the request ended ("ok" for a plain
    # answer, "done" for a whole stream, else an error code or "client_gone" …).
    status: int = 0
    outcome: str = ""
    # Metering: what admission reserved, the stream's content chunks (relay; the output
    # estimate when upstream gives no usage), the usage chunk held back to add Fabrique's
    # figures, and the result: tokens, times, €, Wh, gCO2e (the meter finisher, before the
    # ledger's record, which carries ``meter.as_record()``).
    reservation: Reservation | None = None
    chunks: int = 0
    usage_chunk: dict[str, Any] | None = None
    meter: Meter | None = None

    def upstream_calls(self) -> int:
        return sum(not a.outcome.startswith("skipped") for a in self.attempts)

    def decide(self, stage: str, outcome: str, reason: str = "") -> None:
        self.decisions.append(Decision(stage, outcome, reason))


Stage = Callable[[RequestContext], Awaitable[None]]
