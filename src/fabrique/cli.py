"""The ``fabrique`` command. Thin: parse, build the object, call it, print the outcome.

Domain errors become one line on standard error with an exit code, here and only here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from fabrique.errors import ConfigError, FabriqueError
from fabrique.planner.commands import plan_app

_CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  context_settings=_CONTEXT,
                  help="Fabrique: an OpenAI-compatible gateway for sovereign AI factories.\n\n"
                  "Example: `fabrique serve`, then `fabrique keys create --tenant acme`.")
keys_app = typer.Typer(no_args_is_help=True, context_settings=_CONTEXT,
                       help="Create, list and revoke API keys.\n\n"
                       "Example: `fabrique keys create --tenant acme`")
config_app = typer.Typer(no_args_is_help=True, context_settings=_CONTEXT,
                         help="Check a config file; print the reference of every setting.\n\n"
                         "Example: `fabrique config check examples/fabrique.yaml`")
tenants_app = typer.Typer(no_args_is_help=True, context_settings=_CONTEXT,
                          help="List tenants; give a tenant a residency policy.\n\n"
                          "Example: `fabrique tenants set-policy acme eu-or-pseudonymized "
                          "--config examples/fabrique.yaml`")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(config_app, name="config")
app.add_typer(plan_app, name="plan")

def _version(value: bool) -> None:
    if value:
        from fabrique import __version__
        typer.echo(f"fabrique {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
          ) -> None:
    """Fabrique: an OpenAI-compatible gateway for sovereign AI factories."""


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", envvar="FABRIQUE_CONFIG", show_default=False,
    help="YAML config file (default: the built-in offline config; env FABRIQUE_CONFIG).")]
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _fail(error: FabriqueError) -> typer.Exit:
    typer.echo(f"fabrique: {error.message}", err=True)
    return typer.Exit(2 if isinstance(error, ConfigError) else 1)


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from fabrique.config import load_config
    return load_config(path)


@app.command()
def serve(config: ConfigOpt = None,
          host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(help="TCP port (default 8080).", min=1,
                                                   max=65535)] = None,
          ) -> None:
    """Start the gateway.

    Example: `fabrique serve --port 8080` (no config: simulated models, SQLite in
    ~/.local/share/fabrique).
    """
    try:
        cfg = _config(config)
        from fabrique.server import serve as run_server
        run_server(cfg, host=host, port=port, config_path=config)
    except FabriqueError as error:
        raise _fail(error) from None


@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    model: Annotated[list[str] | None, typer.Option(
        help="Model name to serve (repeatable); others get 404. Default: any name.")] = None,
    decode_ms: Annotated[float, typer.Option(help="Milliseconds per output token.")] = 10.0,
    prefill_tps: Annotated[float, typer.Option(help="Prompt tokens per second.")] = 20000.0,
    ttft_ms: Annotated[float, typer.Option(help="Fixed latency before prefill.")] = 5.0,
    slowdown: Annotated[float, typer.Option(
        help="Decode slowdown per extra concurrent sequence (0.02 = 2 %).")] = 0.02,
    max_tokens: Annotated[int, typer.Option(help="Output tokens when none asked.")] = 64,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 500.")] = 0.0,
    rate_limit_rate: Annotated[float, typer.Option(help="Share answered 429.")] = 0.0,
    stall_rate: Annotated[float, typer.Option(help="Share that stall.")] = 0.0,
    stall_before_s: Annotated[float, typer.Option(help="Stall before the first token.")] = 0.0,
    stall_after_s: Annotated[float, typer.Option(help="Stall after the first token.")] = 0.0,
    disconnect_rate: Annotated[float, typer.Option(help="Share of streams cut mid-way.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the fault dice.")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="FABRIQUE_SIMULATOR_API_KEY",
        help="Require this bearer key, as a hosted engine would (env FABRIQUE_SIMULATOR_API_KEY).")] = None,
) -> None:
    """Run the simulated OpenAI-compatible engine alone.

    Example: `fabrique simulate --port 8000 --decode-ms 20 --error-rate 0.1`
    """
    from pydantic import ValidationError

    from fabrique.config import SimFaults, SimProfile
    from fabrique.server import serve_simulator
    try:
        profile = SimProfile(decode_ms_per_token=decode_ms, prefill_tokens_per_s=prefill_tps,
                             base_ttft_ms=ttft_ms, concurrency_slowdown=slowdown,
                             max_tokens_default=max_tokens)
        faults = SimFaults(error_rate=error_rate, rate_limit_rate=rate_limit_rate,
                           stall_rate=stall_rate, stall_before_first_token_s=stall_before_s,
                           stall_after_first_token_s=stall_after_s,
                           disconnect_rate=disconnect_rate, seed=seed)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        typer.echo(f"fabrique simulate: --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}",
                   err=True)
        raise typer.Exit(2) from None
    try:
        serve_simulator(profile, faults, model or None, host, port, api_key)
    except FabriqueError as error:
        raise _fail(error) from None


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name; created if it does not exist.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(
        help="Expire the key after this many days.")] = None,
    policy: Annotated[str | None, typer.Option(
        help="A residency policy for this key, over its tenant's (one declared in the config).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key; the key is printed once, as the last line.

    Example: `fabrique keys create --tenant acme --name ci --expires-in-days 30`
    """
    from fabrique.keys import KeyStore

    if expires_in_days is not None and expires_in_days <= 0:
        raise _fail(FabriqueError("--expires-in-days must be positive"))
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def create(store: KeyStore) -> tuple[Any, str]:
        return await store.create_key(tenant, name=name, expires_at=expires, policy=policy)

    info, key = _with_store(config, create, policy)
    typer.echo(f"Created key {info.key_id} for tenant {info.tenant}"
               + (f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "")
               + ". Store it now: it is not shown again.", err=not sys.stdout.isatty())
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List keys (ids and status, never the secrets).

    Example: `fabrique keys list --tenant acme`
    """
    from fabrique.keys import KeyStore

    async def list_(store: KeyStore) -> list[Any]:
        return await store.list_keys(tenant)

    keys = _with_store(config, list_)
    if json:
        import orjson
        for k in keys:
            typer.echo(orjson.dumps(k.as_dict()).decode())
        return
    if not keys:
        typer.echo("No keys" + (f" for tenant {tenant!r}" if tenant else "")
                   + ". Create one: fabrique keys create --tenant NAME", err=True)
        return
    from rich.table import Table

    from fabrique.console import console
    table = Table("key id", "tenant", "name", "status", "created", "expires", "policy")
    for k in keys:
        table.add_row(k.key_id, k.tenant, k.name or "", k.status,
                      f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
                      k.policy or "(tenant's)")
    console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (or the whole key).")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a key. This process's gateway applies it at once, others within the key cache TTL.

    Example: `fabrique keys revoke 3kq9v0d2m1xa`
    """
    from fabrique.keys import KeyStore

    async def revoke(store: KeyStore) -> Any:
        return await store.revoke(key_id)

    info = _with_store(config, revoke)
    typer.echo(f"Revoked key {info.key_id} of tenant {info.tenant}.")


def _with_store(config: Path | None, action: Any, policy: str | None = None) -> Any:
    """Run ``action(KeyStore)`` on the configured database; ``policy``, when given, must be
    declared in the config."""
    from fabrique.keys import KeyStore
    from fabrique.store import Database

    async def main() -> Any:
        cfg = _config(config)
        known = cfg.sovereignty.policy_names()
        if policy is not None and policy not in known:
            where = (f"{config} declares" if config else "the built-in config declares")
            hint = "" if config else "; give the gateway's config with --config FILE or FABRIQUE_CONFIG"
            raise FabriqueError(f"unknown policy {policy!r}: {where} {', '.join(known)}{hint}")
        db = await Database(cfg.database_url()).open()
        try:
            return await action(KeyStore(db))
        finally:
            await db.close()

    try:
        return _run(main())
    except FabriqueError as error:
        raise _fail(error) from None


@tenants_app.command("list")
def tenants_list(config: ConfigOpt = None) -> None:
    """List tenants and the residency policy that applies to their keys (the one the admin
    API gave, else the config's for the tenant, else the default).

    Example: `fabrique tenants list`
    """
    from fabrique.keys import KeyStore

    async def list_(store: KeyStore) -> list[dict[str, object]]:
        return await store.list_tenants()

    tenants = _with_store(config, list_)
    sov = _config(config).sovereignty
    for tenant in tenants:
        name = str(tenant["name"])
        given = tenant["policy"] or (f"{sov.tenants[name]} (config)" if name in sov.tenants
                                     else f"{sov.default_policy} (default)")
        typer.echo(f"{name}\t{given}")


@tenants_app.command("set-policy")
def tenants_set_policy(
    tenant: Annotated[str, typer.Argument(help="Tenant name; created if it does not exist.")],
    policy: Annotated[str | None, typer.Argument(
        help="A policy declared in the config; leave out to go back to the config's choice.",
        show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Give a tenant's keys a residency policy (keys with their own keep theirs).

    Example: `fabrique tenants set-policy acme eu-or-pseudonymized --config
    examples/fabrique.yaml`
    """
    from fabrique.keys import KeyStore

    async def set_(store: KeyStore) -> dict[str, object]:
        return await store.set_tenant_policy(tenant, policy, create=True)

    result = _with_store(config, set_, policy)
    typer.echo(f"Tenant {result['name']}: policy {result['policy'] or '(from the config)'}. "
               "Running gateways apply it within server.key_cache_ttl_s.")


@app.command()
def scan(
    file: Annotated[Path | None, typer.Argument(
        help="Text file to scan; standard input when absent.", show_default=False)] = None,
    min_score: Annotated[float | None, typer.Option(
        help="Report findings scoring at least this (default: the config's, 0.5).",
        show_default=False)] = None,
    max_bytes: Annotated[int, typer.Option(help="Refuse larger input.")] = 8 * 1024 * 1024,
    ner: Annotated[bool | None, typer.Option(
        "--ner/--no-ner", help="Find person names with spaCy NER too (pip install "
        "'fabrique[ner]'); default: the config's sovereignty.ner.", show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Find personal data in text, as the gateway would (with the config's own recognizers
    when given one): one JSON object per finding, `{"type", "start", "end", "text", "score"}`,
    offsets in characters.

    Example: `echo "IBAN FR76 3000 6000 0112 3456 7890 189" | fabrique scan`
    """
    import orjson

    from fabrique.policy.sovereignty import scanner_for

    try:
        scanner = scanner_for(_config(config).sovereignty, ner=ner, min_score=min_score,
                              cache_size=0)
    except FabriqueError as error:
        if ner and error.message.startswith("sovereignty.ner: "):  # the flag asked for it
            error = FabriqueError(error.message.replace("sovereignty.ner", "--ner", 1))
        raise _fail(error) from None
    source = str(file) if file else "standard input"
    try:
        stream = file.open("rb") if file else sys.stdin.buffer
        with stream:
            raw = stream.read(max_bytes + 1)
    except OSError as exc:
        raise _fail(FabriqueError(f"{source}: cannot read ({exc.strerror})")) from None
    if len(raw) > max_bytes:
        raise _fail(FabriqueError(f"{source}: larger than --max-bytes {max_bytes}"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(FabriqueError(f"{source}: not UTF-8 text (byte {exc.start})")) from None
    for entity in scanner.scan(text):
        sys.stdout.write(orjson.dumps(entity.as_dict()).decode() + "\n")


@app.command()
def usage(
    by: Annotated[str, typer.Option(help="Group by tenant, key, agent, deployment or model.")
                  ] = "tenant",
    since: Annotated[str, typer.Option(help="A span (7d, 24h, 30m, 2w) or an ISO date.")] = "7d",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header line.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Requests, tokens, euros, watt-hours and gCO2e, from the usage the gateway recorded.

    Example: `fabrique usage --by deployment --since 24h`
    """
    from fabrique.metering.report import COLUMNS, report
    from fabrique.metering.report import since as parse_since
    from fabrique.store import Database

    async def main() -> list[dict[str, Any]]:
        start = parse_since(since)
        db = await Database(_config(config).database_url()).open()
        try:
            return await report(db, by, start, tenant)
        finally:
            await db.close()

    try:
        rows = _run(main())
    except FabriqueError as error:
        raise _fail(error) from None
    columns = [by, *COLUMNS]
    if json:
        import orjson
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
    elif csv:
        import csv as csv_module
        writer = csv_module.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        from rich.table import Table

        from fabrique.console import console
        shown = {by: by, "requests": "requests", "refused": "refused", "input_tokens": "in",
                 "output_tokens": "out", "cost_eur": "EUR", "energy_wh": "Wh",
                 "co2e_g": "gCO2e", "avg_latency_ms": "avg ms"}  # --json/--csv have them all
        table = Table(*shown.values(), title=f"Usage by {by} since {since}")
        for row in rows:
            table.add_row(*("(none)" if row[c] is None and c == by else "" if row[c] is None
                            else f"{row[c]:.6f}" if c == "cost_eur"
                            else f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                            for c in shown))
        console().print(table)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="The YAML file.")]) -> None:
    """Validate a config file; print what it declares.

    Example: `fabrique config check examples/fabrique.yaml`
    """
    try:
        cfg = _config(path)
        _check_at_start(cfg)
    except FabriqueError as error:
        raise _fail(error) from None
    typer.echo(f"{path}: ok — {len(cfg.providers)} providers, {len(cfg.models)} models: "
               + (", ".join(m.name for m in cfg.models) or "none"))
    sov = cfg.sovereignty
    typer.echo(f"{path}: policies: {', '.join(sov.policy_names())} (default: {sov.default_policy})"
               + "".join(f"; {t}: {p}" for t, p in sov.tenants.items()))
    if not cfg.models:
        typer.echo(f"{path}: warning: no models are declared, so the gateway would serve none "
                   "(see examples/fabrique.yaml)", err=True)


def _check_at_start(cfg: Any) -> None:
    """What ``serve`` checks when it builds the gateway beyond the file's schema (metering's
    deployment names and grid regions), so that ``config check`` says the same."""
    from fabrique.metering import Metering
    from fabrique.routing import RoutingTable

    Metering(cfg, None, RoutingTable(cfg))  # type: ignore[arg-type]  # no database is opened


@config_app.command("reference")
def config_reference() -> None:
    """Print the reference of every setting (Markdown).

    Example: `fabrique config reference > docs/config.md`
    """
    from fabrique.config import settings_reference
    typer.echo(settings_reference(), nl=False)


from fabrique.cli_audit import audit_app  # noqa: E402  (it uses the helpers above)

app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
