"""``fabrique audit``: export, verify offline, prove, erase, show the public key.

Thin, as ``cli.py``: the work is in ``fabrique.ledger``; here arguments are parsed and
errors become one line with an exit code (1: the check failed or the action could not be
done; 2: bad input).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from fabrique.cli import ConfigOpt, _config, _fail, _run
from fabrique.errors import FabriqueError
from fabrique.ledger.since import parse_since

if TYPE_CHECKING:
    from fabrique.ledger.service import Ledger

T = TypeVar("T")
audit_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                        help="The audit ledger: export, verify offline, prove, erase.\n\n"
                        "Example: `fabrique audit export > audit.jsonl && fabrique audit verify "
                        "audit.jsonl --public-key \"$(fabrique audit public-key)\"`")


def _bad_input(message: str) -> typer.Exit:
    typer.echo(f"fabrique: {message}", err=True)
    return typer.Exit(2)


def _with_ledger(config: Path | None, action: Callable[[Ledger], Awaitable[T]]) -> T:
    from fabrique.ledger.service import Ledger
    from fabrique.store import Database

    async def main() -> T:
        cfg = _config(config)
        db = await Database(cfg.database_url()).open()
        ledger = Ledger(cfg, db)
        try:
            ledger.load_keys()
            return await action(ledger)
        finally:
            await ledger.store.close()
            await db.close()

    try:
        return _run(main())
    except FabriqueError as error:
        raise _fail(error) from None


def _echo_json(data: Any) -> None:
    import orjson
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@audit_app.command("export")
def export(
    since: Annotated[str | None, typer.Option(
        help="Only records from this time: ISO date/time (UTC) or an age (7d, 12h).",
        show_default=False)] = None,
    tenant: Annotated[str | None, typer.Option(
        help="Only this tenant's records, each with its inclusion proof (what its own key "
        "gets from the admin API).", show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Write the ledger as JSON lines: a header, the records (with signed checkpoints),
    then the signed tree head; `fabrique audit verify` checks it offline.

    Example: `fabrique audit export --since 30d > audit.jsonl`
    """
    try:
        since_ms = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise _bad_input(str(exc)) from None

    async def write(ledger: Ledger) -> int:
        count = 0
        out = sys.stdout.buffer
        lines = ledger.export(since_ms) if tenant is None else ledger.tenant_export(tenant, since_ms)
        async for line in lines:
            out.write(line)
            count += 1
        out.flush()
        return count

    _with_ledger(config, write)


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(
        help="An export (JSON lines) or a proof (from fabrique audit proof); - for standard input.")],
    public_key: Annotated[str, typer.Option(
        help="The ledger's public key: base64, PEM, or a file holding it "
        "(fabrique audit public-key).")],
) -> None:
    """Check an export or a proof offline, with no database: exit 0 when it holds;
    otherwise exit 1 naming the first bad record's index and what is wrong (modified,
    removed, reordered, inserted, bad signature; for a proof: bad signature, fork …).

    Example: `fabrique audit verify audit.jsonl --public-key ledger.pub`, or `fabrique audit
    proof --index 42 > p.json && fabrique audit verify p.json --public-key ledger.pub`
    """
    from fabrique.ledger.signing import parse_public_key

    try:
        key = parse_public_key(public_key)
    except ValueError as exc:
        raise _bad_input(f"--public-key: {exc}") from None
    name = "standard input" if str(file) == "-" else str(file)
    try:
        stream = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    except OSError as exc:
        raise _bad_input(f"{name}: cannot read ({exc.strerror})") from None
    try:
        with stream:
            message = _verify_stream(stream, key)
    except OSError as exc:
        raise _bad_input(f"{name}: cannot read ({exc.strerror})") from None
    except _Failed as exc:
        typer.echo(f"fabrique: {name}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: ok — {message}")


class _Failed(Exception):
    """An export or proof that does not hold."""


def _verify_stream(stream: Any, key: Any) -> str:
    """An export when the first line is its header, else one JSON proof."""
    import itertools

    import orjson

    from fabrique.ledger import tenant_export
    from fabrique.ledger.proofs import ProofInvalid, check_proof
    from fabrique.ledger.verify import ExportInvalid, verify_export

    first = stream.readline()
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:  # a pretty-printed proof spans lines
        doc = None
        if first.strip() == b"{":
            try:
                doc = orjson.loads(first + stream.read(64 * 1024 * 1024))
            except orjson.JSONDecodeError:
                raise _Failed("not an export nor a proof (not JSON)") from None
    if isinstance(doc, dict) and "proof" in doc:
        try:
            return check_proof(doc, key)
        except ProofInvalid as exc:
            raise _Failed(str(exc)) from None
    if isinstance(doc, dict) and doc.get("format") == tenant_export.FORMAT:
        try:
            own = tenant_export.verify_tenant_export(itertools.chain([first], stream), key)
        except ExportInvalid as exc:
            raise _Failed(str(exc)) from None
        return (f"{own.records} records of tenant {own.tenant}, each proven in the tree head "
                f"of size {own.head.size} signed by key {own.head.key_id} (a tenant export "
                "cannot show that none was left out; the full export can)")
    try:
        result = verify_export(itertools.chain([first], stream), key)
    except ExportInvalid as exc:
        raise _Failed(str(exc)) from None
    when = datetime.fromtimestamp(result.head.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
    return (f"records {result.start} to {result.head.size - 1} ({result.records}), tree head "
            f"of size {result.head.size} signed by key {result.head.key_id} at {when}, "
            f"{result.checkpoints} signed checkpoints matched")


@audit_app.command("proof")
def proof(
    index: Annotated[int | None, typer.Option(help="The record's index.", show_default=False)] = None,
    request_id: Annotated[str | None, typer.Option(
        help="The record of this request (x-fabrique-request-id).", show_default=False)] = None,
    consistency: Annotated[int | None, typer.Option(
        help="Instead: prove that the log of this many records is a prefix of today's.",
        show_default=False)] = None,
    size: Annotated[int | None, typer.Option(
        help="Prove against the log at this size (default: a fresh signed head).",
        show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Print an inclusion proof of one record (with the record and the signed tree head),
    or a consistency proof between two sizes of the log, as JSON.

    Example: `fabrique audit proof --request-id req_0123abcd` or `fabrique audit proof
    --consistency 1000`
    """
    if [index is None, request_id is None, consistency is None].count(False) != 1:
        raise _bad_input("give one of --index, --request-id or --consistency")

    async def prove(ledger: Ledger) -> dict[str, Any]:
        from fabrique.errors import NotFound
        if consistency is not None:
            return await ledger.consistency(consistency, size)
        found = index if index is not None else await ledger.store.find(str(request_id))
        if found is None:
            raise NotFound(f"no record of request {request_id}")
        return await ledger.inclusion(found, size)

    _echo_json(_with_ledger(config, prove))


@audit_app.command("erase")
def erase(
    subject: Annotated[str, typer.Option(help="The data subject's id (as sent in the subject header).")],
    tenant: Annotated[str | None, typer.Option(
        help="Only in this tenant (default: every tenant).", show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Erase a data subject: delete their payload key, so their encrypted payloads can never
    be read again; records and the tree stay verifiable.

    Example: `fabrique audit erase --subject patient-4711 --tenant hospital`
    """
    async def run(ledger: Ledger) -> list[str]:
        return await ledger.erase(subject, tenant)

    tenants = _with_ledger(config, run)
    typer.echo(f"Erased subject {subject!r} in {', '.join(tenants)}: their payloads are unreadable."
               if tenants else f"No payload key of subject {subject!r}"
               + (f" in tenant {tenant!r}" if tenant else "") + ": nothing to erase.")


@audit_app.command("public-key")
def public_key(config: ConfigOpt = None) -> None:
    """Print the public key that signs tree heads (base64 of 32 bytes), to verify exports
    and proofs with; its key id goes to standard error.

    Example: `fabrique audit public-key > ledger.pub`
    """
    async def show(ledger: Ledger) -> dict[str, str]:
        return ledger.public_key()

    try:
        cfg = _config(config)
    except FabriqueError as error:
        raise _fail(error) from None
    where = cfg.resolved_data_dir() / "ledger_signing_key.pem"
    if cfg.ledger.signing_key is None and not where.exists():
        # Making one here would publish a key that signs nothing: the gateway's is elsewhere.
        raise _fail(FabriqueError(
            f"no ledger signing key in {where.parent}: a gateway makes one on its first start; "
            "give the gateway's --config or FABRIQUE_HOME"))
    info = _with_ledger(config, show)
    typer.echo(f"Ed25519 key {info['key_id']}", err=True)
    typer.echo(info["public_key"])


@audit_app.command("payload")
def payload(
    index: Annotated[int, typer.Argument(help="The record's index.")],
    config: ConfigOpt = None,
) -> None:
    """Print the decrypted payload (request and answer) of a record kept `encrypted`.

    Example: `fabrique audit payload 42`
    """
    from fabrique.ledger.payload_crypto import PayloadUnreadable

    async def read(ledger: Ledger) -> dict[str, Any]:
        try:
            return await ledger.payload(index)
        except PayloadUnreadable as exc:
            raise FabriqueError(str(exc)) from None

    _echo_json(_with_ledger(config, read))
