"""The `sealgate` command. Operator errors print as one line and a non-zero exit."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sealgate import __version__, config
from sealgate.errors import HomeError, SealgateError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sealgate.vault.models import Administrator
    from sealgate.vault.vault import Vault

OPERATOR = "cli"  # the actor recorded in the audit trail for commands run here


class Context:
    def __init__(self, home: str | None) -> None:
        self.home = config.resolve_home(home, os.environ)

    def config(self) -> config.Config:
        if not self.home.is_dir():
            raise HomeError(f"Sealgate home {self.home} does not exist: "
                            f"run `sealgate --home {self.home} init` first")
        if not (self.home / config.CONFIG_FILE).is_file():
            raise HomeError(f"{self.home} is not initialised (no {config.CONFIG_FILE}): "
                            f"run `sealgate --home {self.home} init`")
        return config.load(self.home)

    def vault(self) -> Vault:
        from sealgate.vault.vault import Vault

        vault = Vault.open(self.config())
        vault.database.check()
        return vault


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Sealgate home directory (default: $SEALGATE_HOME, else ./var).")
@click.version_option(__version__, prog_name="sealgate")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Sealgate: a self-hosted secure email gateway."""
    ctx.obj = Context(home)


@cli.command()
@click.option("--organisation", default=None, help="Organisation name for a new configuration.")
@click.option("--domain", "domains", multiple=True,
              help="Internal mail domain for a new configuration (repeatable).")
@pass_context
def init(ctx: Context, organisation: str | None, domains: tuple[str, ...]) -> None:
    """Create the home directory, configuration, keyring and database (only what is missing)."""
    from sealgate.crypto.keyring import Keyring
    from sealgate.vault.database import Database
    from sealgate.vault.vault import count_sealed_parts

    home = ctx.home
    # Others may pass through (to reach the milter socket: the MTA runs as its own user) but
    # not list it; everything inside is the owner's only.
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o711)  # noqa: S103 - traverse only; mkdir's mode is cut by the umask
    config_path = home / config.CONFIG_FILE
    if config_path.exists():
        click.echo(f"kept      {config_path}")
    else:
        text = config.initial_config(secrets.token_urlsafe(48), secrets.token_urlsafe(32),
                                     str(uuid.uuid4()))
        if organisation:
            text = text.replace('name = "Example Organisation"', f"name = {_toml(organisation)}")
        if domains:
            text = text.replace('domains = ["example.org"]',
                                f"domains = [{', '.join(_toml(d) for d in domains)}]")
        descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"created   {config_path}")
    settings = config.load(home)

    database = Database(settings.database_url, durable=settings.vault.durable)
    try:
        fresh_database = database.revision() is None
        if not settings.keyring_path.exists():
            if not fresh_database and count_sealed_parts(database):
                raise SealgateError(
                    f"keyring {settings.keyring_path} is missing but the database holds sealed "
                    "content: restore the keyring from backup; a new one would not open it")
            Keyring.create(settings.keyring_path)
            click.echo(f"created   {settings.keyring_path}")
        else:
            Keyring.load(settings.keyring_path)
            click.echo(f"kept      {settings.keyring_path}")
        database.upgrade()
        click.echo(f"{'created' if fresh_database else 'ready':9} database "
                   f"{settings.database_url if settings.database.url == '' else '(configured)'}")
    finally:
        database.dispose()
    settings.blob_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    click.echo(f"ready     {home}")


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@cli.command()
@pass_context
def check(ctx: Context) -> None:
    """Validate the configuration, keyring and database, and say what is wrong if anything is."""
    vault = ctx.vault()
    vault.close()
    click.echo("configuration, keyring and database are in order")


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--sender", default="", help="Judge as if sent by this address (policy scopes).")
@click.option("--to", "recipients", multiple=True,
              help="Judge as if sent to this address (repeatable; policy scopes).")
@pass_context
def scan(ctx: Context, path: str, as_json: bool, sender: str,
         recipients: tuple[str, ...]) -> None:
    """Scan an .eml message or any file (- for standard input) with the DLP policies of the
    home's configuration (the built-in packs when there is none): the verdict, the policies
    that matched, and each finding, masked, with the part it was found in."""
    import json

    from sealgate.dlp.detectors import label
    from sealgate.dlp.inspect import Inspector

    settings = ctx.config() if (ctx.home / config.CONFIG_FILE).is_file() \
        else config.Config(home=ctx.home)
    inspector = Inspector.from_config(settings.model_copy(
        update={"dlp": settings.dlp.model_copy(update={"enabled": True})}))
    assert inspector is not None
    name = "-" if path == "-" else Path(path).name
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None
    report = inspector.file(name, data) if not (sender or recipients) else \
        inspector.message(data, sender, list(recipients))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    verdict = report.verdict
    click.echo(f"verdict: {verdict.action or 'nothing to act on'}")
    for matched in verdict.matched:
        click.echo(f"  policy {matched.policy}: {matched.action} "
                   f"({matched.count} x {', '.join(matched.types)})")
    if verdict.action == "quarantine":
        click.echo(f"  sender may send as is: {'yes' if verdict.allow_send_as_is else 'no'}")
    click.echo(f"findings: {len(report.findings)}")
    for finding in report.findings:
        click.echo(f"  {finding.part}: {finding.type} ({label(finding.type)}), "
                   f"{finding.confidence}: {finding.masked}")
    for item in report.unreadable:
        click.echo(f"  {item.part}: {item.problem}: {item.detail}")


@cli.command()
@pass_context
def serve(ctx: Context) -> None:
    """Run the web server (portal and API) under gunicorn, in the foreground."""
    from sealgate.server.app import create_app
    from sealgate.server.gunicorn import serve as run_gunicorn

    settings = ctx.config()
    create_app(settings).extensions["sealgate"].vault.close()  # fail here, not in every worker
    run_gunicorn(settings)


@cli.command()
@pass_context
def milter(ctx: Context) -> None:
    """Run the milter daemon that Postfix or Sendmail talk to, in the foreground."""
    from sealgate.milter.daemon import run_milter

    run_milter(ctx.config())


LAB_SMTP_PORT = 2525


@cli.command()
@click.option("--lab", is_flag=True,
              help="Also start a private loopback Postfix wired to the milter, delivering "
                   "to .eml files under HOME/lab/delivered (needs root).")
@click.option("--lab-port", default=LAB_SMTP_PORT, show_default=True,
              help="SMTP port of the lab Postfix.")
@pass_context
def run(ctx: Context, lab: bool, lab_port: int) -> None:
    """Run the server and the milter together in the foreground; Ctrl-C stops everything."""
    settings = ctx.config()
    ctx.vault().close()
    environ = dict(os.environ)
    postfix = sink = None
    if lab:
        postfix, sink = _lab(ctx.home, settings, lab_port)
        postfix.write_config()  # the milter's socket folder must exist before it starts
        environ["SEALGATE_MILTER__LISTEN"] = f"unix:{postfix.socket_dir / 'sealgate.sock'}"
    base = [sys.executable, "-m", "sealgate", "--home", str(ctx.home)]
    children = [subprocess.Popen([*base, name], env=environ) for name in ("serve", "milter")]
    try:
        if postfix is not None:
            from sealgate.lab.noop_milter import wait_until_listening

            postfix.start()
            # Announced once the milter answers: before that Postfix defers (4xx).
            wait_until_listening(environ["SEALGATE_MILTER__LISTEN"], timeout=60,
                                 process=children[1])
        click.echo(f"portal    {settings.server.base_url}/  (listening on "
                   f"{settings.server.listen})")
        click.echo(f"health    http://{settings.server.listen}/healthz")
        if postfix is not None and sink is not None:
            click.echo(f"lab       Postfix on 127.0.0.1:{postfix.smtp_port} runs the milter; "
                       f"what it delivers lands in {sink.maildir}")
            port_option = "" if lab_port == LAB_SMTP_PORT else f" --port {lab_port}"
            click.echo(f"try       {Path(sys.executable).parent / 'sealgate'} --home "
                       f"{ctx.home} lab send{port_option}")
        else:
            click.echo(f"milter    {settings.milter_socket}")
            click.echo("Postfix   add to main.cf, then `postfix reload`:")
            for line in postfix_lines(settings):
                click.echo(f"            {line}")
        _wait_for_a_stop(children)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(30)
        if postfix is not None:
            postfix.stop()
        if sink is not None:
            sink.stop()


def _lab(home: Path, settings: config.Config, port: int) -> tuple[Any, Any]:
    from sealgate.lab.postfix import PrivatePostfix
    from sealgate.lab.sink import SmtpSink

    if os.geteuid() != 0:
        raise SealgateError("the lab's private Postfix needs root: run `sudo make run`, "
                            "or `sealgate run` without --lab")
    sink = SmtpSink(maildir=home / "lab" / "delivered")
    sink.start()
    reinject_port = int(settings.milter.reinject.rpartition(":")[2])
    postfix = PrivatePostfix(home / "lab" / "postfix", sink.port, smtp_port=port,
                             reinject_port=reinject_port,
                             milter=f"unix:{home / 'lab/postfix/queue/sockets/sealgate.sock'}")
    return postfix, sink


def _wait_for_a_stop(children: list[subprocess.Popen[bytes]]) -> None:
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children]
    if not stopping:
        raise SealgateError(f"a component stopped unexpectedly (exit codes {codes}); "
                            "everything was stopped")


@cli.group("lab")
def lab_group() -> None:
    """The private loopback mail system of `sealgate run --lab`."""


@lab_group.command("send")
@click.option("--to", "recipient", default="patient@example.net", show_default=True)
@click.option("--subject", default="encrypt/ Your lab results", show_default=True)
@click.option("--port", default=LAB_SMTP_PORT, show_default=True,
              help="The lab Postfix's SMTP port.")
@pass_context
def lab_send(ctx: Context, recipient: str, subject: str, port: int) -> None:
    """Send a sample message through the lab Postfix (and so through the milter)."""
    import smtplib
    from email.message import EmailMessage

    from sealgate import smtp

    settings = ctx.config()
    sender = f"doctor@{settings.organisation.domains[0]}"
    message = EmailMessage()
    message["From"] = f"Dr. Example <{sender}>"
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content("Dear patient,\n\nyour results are attached; they look normal.\n")
    message.add_attachment(b"%PDF-1.4 sample results", maintype="application",
                           subtype="pdf", filename="results.pdf")
    try:
        smtp.send("127.0.0.1", port, sender, [recipient], message.as_bytes(), timeout=60)
    except (OSError, smtplib.SMTPException) as error:
        raise SealgateError(f"could not send through 127.0.0.1:{port}: {error} "
                            "(is `make run` running?)") from None
    click.echo(f"sent '{subject}' to {recipient}; what they receive appears in "
               f"{ctx.home / 'lab' / 'delivered'} in a moment")


def postfix_lines(settings: config.Config) -> list[str]:
    socket = settings.milter_socket
    if socket.startswith("unix:"):
        socket = f"unix:{socket.removeprefix('unix:')}"
    else:
        port, _, host = socket.partition(":")[2].partition("@")
        socket = f"inet:{host or '127.0.0.1'}:{port}"
    return [
        f"smtpd_milters = {socket}",
        f"non_smtpd_milters = {socket}",
        "milter_default_action = tempfail",
        "milter_protocol = 6",
    ]


@cli.group()
def keys() -> None:
    """Manage the keyring that wraps every data key."""


@keys.command("status")
@pass_context
def keys_status(ctx: Context) -> None:
    """Show the key versions and how many data keys each wraps."""
    vault = ctx.vault()
    try:
        in_use = vault.key_versions_in_use()
        keyring = vault.keyring
        for version in sorted(set(keyring.keys) | set(in_use)):
            state = "current" if version == keyring.current else (
                "present" if version in keyring.keys else "MISSING")
            click.echo(f"version {version}: {state}, wraps {in_use.get(version, 0)} data key(s)")
    finally:
        vault.close()


@keys.command("rotate")
@pass_context
def keys_rotate(ctx: Context) -> None:
    """Add a new key version and use it for new data; old versions still open old data."""
    vault = ctx.vault()
    try:
        version = vault.rotate_keys(OPERATOR)
    finally:
        vault.close()
    click.echo(f"key version {version} is now current; run `sealgate keys rewrap` to move "
               "existing data keys to it")


@keys.command("rewrap")
@pass_context
def keys_rewrap(ctx: Context) -> None:
    """Re-wrap every data key under the newest version, without touching content."""
    vault = ctx.vault()
    try:
        count = vault.rewrap(OPERATOR)
        current = vault.keyring.current
    finally:
        vault.close()
    click.echo(f"re-wrapped {count} data key(s) under key version {current}")


@keys.command("retire")
@click.argument("version", type=int)
@pass_context
def keys_retire(ctx: Context, version: int) -> None:
    """Remove an old key version that no data key uses any more."""
    vault = ctx.vault()
    try:
        vault.retire_key(version, OPERATOR)
    finally:
        vault.close()
    click.echo(f"key version {version} removed from the keyring")


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@pass_context
def audit_verify(ctx: Context) -> None:
    """Check that no audit event was changed, removed or reordered."""
    vault = ctx.vault()
    try:
        report = vault.verify_audit()
    finally:
        vault.close()
    if report.intact:
        click.echo(f"audit trail intact: {report.events} event(s)")
        return
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    raise SealgateError(f"audit trail is NOT intact: {len(report.problems)} problem(s) "
                        f"in {report.events} event(s)")


@cli.group("admin")
def admin_group() -> None:
    """Administrators of the admin console (/admin). Each signs in with a password and an
    authenticator app, which they set up at their first sign-in."""


def _new_password(address: str, organisation: str, from_stdin: bool) -> str:
    from sealgate.crypto.passwords import weakness

    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = weakness(password, user_inputs=[address, organisation])
    if problem:
        raise click.ClickException(problem)
    return password


@admin_group.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def admin_add(ctx: Context, address: str, password_stdin: bool) -> None:
    """Make ADDRESS an administrator with a password."""
    from sealgate.vault import admins

    settings = ctx.config()
    password = _new_password(address, settings.organisation.name, password_stdin)
    vault = ctx.vault()
    try:
        with vault.database.writing() as session:
            added = admins.add(session, address, password)
            vault.record_in(session, OPERATOR, "admin.added", "administrator", added.address)
    except admins.AdminError as error:
        raise click.ClickException(str(error)) from None
    finally:
        vault.close()
    click.echo(f"{added.address} is an administrator: sign in at "
               f"{settings.server.base_url}/admin/ and set up the authenticator app")


@contextmanager
def _administrator(ctx: Context, address: str) -> Iterator[tuple[Vault, Session, Administrator]]:
    """The vault, a transaction, and the administrator `address` in it (or a clear error)."""
    from sealgate.vault import admins

    vault = ctx.vault()
    try:
        with vault.database.writing() as session:
            found = admins.find(session, address)
            if found is None:
                raise click.ClickException(f"{address} is not an administrator")
            yield vault, session, found
    finally:
        vault.close()


@admin_group.command("password")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def admin_password(ctx: Context, address: str, password_stdin: bool) -> None:
    """Set a new password for an administrator (ends their sessions, lifts a lockout)."""
    from datetime import UTC, datetime

    from sealgate.vault import admins

    settings = ctx.config()
    password = _new_password(address, settings.organisation.name, password_stdin)
    with _administrator(ctx, address) as (vault, session, found):
        admins.set_password(session, found, password, datetime.now(UTC))
        vault.record_in(session, OPERATOR, "admin.password_set", "administrator",
                        found.address)
    click.echo(f"new password set for {address}")


@admin_group.command("reset-authenticator")
@click.argument("address")
@pass_context
def admin_reset_authenticator(ctx: Context, address: str) -> None:
    """Forget an administrator's authenticator: they set up a new one at the next sign-in
    (with their password). Also unbinds their Microsoft account, if one is bound, and ends
    their sessions: use it too when that account may be compromised. Once the new
    authenticator is set up, their next Microsoft sign-in binds the account again after
    they type the authenticator's code."""
    from datetime import UTC, datetime

    from sealgate.vault import admins

    with _administrator(ctx, address) as (vault, session, found):
        unbound = found.microsoft_oid
        admins.reset_totp(session, found, datetime.now(UTC))
        vault.record_in(session, OPERATOR, "admin.totp_reset", "administrator",
                        found.address, {"microsoft_unbound": unbound} if unbound else {})
    click.echo(f"{address} sets up a new authenticator at the next sign-in"
               + ("; their Microsoft account is unbound" if unbound else ""))


@admin_group.command("list")
@pass_context
def admin_list(ctx: Context) -> None:
    """The administrators, with whether their authenticator is set up."""
    from sqlalchemy import select

    from sealgate.vault.models import Administrator

    vault = ctx.vault()
    try:
        with vault.database.session() as session:
            for found in session.scalars(select(Administrator).order_by(Administrator.address)):
                state = "disabled" if found.disabled_at else (
                    "authenticator set up" if found.has_totp else "no authenticator yet")
                click.echo(f"{found.address}\t{state}")
    finally:
        vault.close()


@cli.group("vault")
def vault_group() -> None:
    """The sealed content."""


@vault_group.command("verify")
@pass_context
def vault_verify(ctx: Context) -> None:
    """Open every stored part and report any that is altered, truncated, missing or
    wrapped under a key version the keyring no longer holds."""
    vault = ctx.vault()
    failures = 0
    try:
        for part, reason in vault.verify_content():
            failures += 1
            click.echo(f"BAD: message {part.message_id} part {part.id} ({part.kind.value}): "
                       f"{reason}", err=True)
        total = vault.count_parts()
    finally:
        vault.close()
    if failures:
        raise SealgateError(f"{failures} of {total} stored part(s) do not open")
    click.echo(f"all {total} stored part(s) open and authenticate")


@cli.command()
@click.argument("domain")
@click.option("--nameserver", default=None,
              help="Ask this resolver, IP[:PORT] (default: the system's).")
@click.option("--port", default=25, show_default=True, help="Where the MX hosts listen.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per connection.")
def probe(domain: str, nameserver: str | None, port: int, timeout: float) -> None:
    """Whether DOMAIN qualifies for verified-TLS delivery: its MX hosts, STARTTLS and
    certificates, DANE and MTA-STS, with the evidence for the verdict."""
    from sealgate.routing.probe import Prober, describe

    resolver = _resolver(nameserver, timeout)
    click.echo(describe(Prober(resolver, port=port, timeout=timeout).probe(domain)))


@cli.group("recipient-keys")
def recipient_keys_group() -> None:
    """Recipients' S/MIME certificates and OpenPGP keys, for delivery encrypted to them."""


@recipient_keys_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--address", default=None,
              help="Only for this address (default: every address the key names).")
@pass_context
def recipient_keys_import(ctx: Context, path: str, address: str | None) -> None:
    """Import a certificate (PEM or DER) or an OpenPGP public key (armored or binary)."""
    from datetime import UTC, datetime

    from sealgate.vault import recipient_keys

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None
    facts = recipient_keys.key_facts(data, datetime.now(UTC))
    try:  # the same rules as the admin console's import
        chosen = recipient_keys.owners(facts, address)
    except recipient_keys.KeyRefused as refusal:
        raise SealgateError(f"{path} {refusal}") from None
    assert facts.kind is not None
    vault = ctx.vault()
    try:
        for owner in chosen:
            added = recipient_keys.put(vault, OPERATOR, owner, facts.kind, facts.fingerprint,
                                       data, facts.not_after)
            click.echo(f"{'added' if added else 'already on file'}: {facts.kind} "
                       f"{facts.fingerprint} for {owner}")
    finally:
        vault.close()


@recipient_keys_group.command("list")
@click.argument("address", required=False)
@pass_context
def recipient_keys_list(ctx: Context, address: str | None) -> None:
    """The keys on file (for one address)."""
    from sealgate.vault import recipient_keys

    vault = ctx.vault()
    try:
        keys = recipient_keys.listed(vault, address)
    finally:
        vault.close()
    for key in keys:
        until = key.not_after.date().isoformat() if key.not_after else "no expiry"
        click.echo(f"{key.address}  {key.kind}  {key.fingerprint}  until {until}  "
                   f"({key.source})")
    if not keys:
        click.echo("no keys on file")


@recipient_keys_group.command("remove")
@click.argument("fingerprint")
@click.option("--address", default=None, help="Only for this address.")
@pass_context
def recipient_keys_remove(ctx: Context, fingerprint: str, address: str | None) -> None:
    """Remove a key by its fingerprint."""
    from sealgate.vault import recipient_keys

    vault = ctx.vault()
    try:
        removed = recipient_keys.remove(vault, OPERATOR, fingerprint, address)
    finally:
        vault.close()
    if not removed:
        raise SealgateError(f"no key with fingerprint {fingerprint} on file")
    click.echo(f"removed {removed} key(s)")


@recipient_keys_group.command("wkd")
@click.argument("address")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per request.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Trust the CA certificates in this PEM file instead of the system's.")
@click.option("--connect-to", default=None, metavar="HOST:PORT",
              help="Connect here instead of the directory's own host (whose certificate "
                   "is still required): to try a directory before its DNS is live.")
@pass_context
def recipient_keys_wkd(ctx: Context, address: str, timeout: float, ca_file: str | None,
                       connect_to: str | None) -> None:
    """Look up ADDRESS's OpenPGP key by Web Key Directory now, and put it on file if it is
    usable. (Routing does this in the background for recipients without a key.)"""
    import ssl
    from datetime import UTC, datetime

    from sealgate.crypto import pgp
    from sealgate.routing.wkd_lookups import store_wkd_key

    address = address.strip().lower()  # as routing's background lookups ask
    try:
        pgp.wkd_urls(address)
    except pgp.PgpError as error:
        raise SealgateError(str(error)) from None
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as error:
        raise SealgateError(f"cannot use {ca_file} as CA certificates: {error}") from None
    target = _host_and_port(connect_to) if connect_to else None
    opener = pgp.HttpsOpener(ssl_context=context,
                             resolve=(lambda _host, _port: target) if target else None)
    vault = ctx.vault()
    try:
        now = datetime.now(UTC)
        material = pgp.fetch_wkd(address, timeout=timeout, opener=opener, now=now)
        if material is None:
            raise SealgateError(f"no usable key published by Web Key Directory for {address}")
        try:
            info, added = store_wkd_key(vault, address, material, now, actor=OPERATOR)
        except pgp.PgpError as error:
            raise SealgateError(str(error)) from None
    finally:
        vault.close()
    until = info.expires.date().isoformat() if info.expires else "no expiry"
    click.echo(f"{'added' if added else 'already on file'}: pgp {info.fingerprint} "
               f"for {address}, until {until}")


def _host_and_port(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPV6]:PORT."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--connect-to")
    return host, port


@cli.group("dkim")
def dkim_group() -> None:
    """The organisation's DKIM key, which signs the mail Sealgate sends."""


@dkim_group.command("init")
@click.option("--selector", default=None,
              help="The DKIM selector (default: dkim.selector, \"sealgate\").")
@click.option("--bits", default=2048, show_default=True, type=click.IntRange(min=2048),
              help="RSA key size.")
@pass_context
def dkim_init(ctx: Context, selector: str | None, bits: int) -> None:
    """Make a new RSA signing key in the home (never overwriting one), and print the [dkim]
    lines to add to the configuration and the DNS TXT record to publish. The configuration
    is not changed: publish the record first, then turn signing on."""
    from sealgate.mail.dkim import DkimKey, generate_private_key

    settings = ctx.config()
    selector = selector or settings.dkim.selector
    try:
        config.DkimConfig(selector=selector)
    except ValueError:
        raise click.BadParameter(f"{selector!r} is not a DNS label",
                                 param_hint="--selector") from None
    relative = Path("dkim") / f"{selector}.pem"
    path = settings.home / relative
    path.parent.mkdir(mode=0o700, exist_ok=True)
    pem = generate_private_key(bits)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SealgateError(f"{path} exists: a published key is never overwritten; choose "
                            "another --selector (keys are rotated by selector)") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    key = DkimKey.from_pem(selector, settings.dkim_domain, pem)
    record = key.record()
    click.echo(f"created   {path}")
    click.echo(f"\nAdd to {settings.home / config.CONFIG_FILE} (once the DNS record is "
               "published):\n")
    click.echo(f"[dkim]\nkey = {_toml(str(relative))}\nselector = {_toml(selector)}")
    if settings.dkim.domain:
        click.echo(f"domain = {_toml(settings.dkim.domain)}")
    click.echo(f"\nPublish this DNS TXT record:\n\n{key.record_name}.  TXT  "
               + " ".join(f'"{record[i:i + 250]}"' for i in range(0, len(record), 250)))
    click.echo(f"\nThen check it: sealgate dns check {key.domain}")


@cli.group("dns")
def dns_group() -> None:
    """The DNS records that make Sealgate's mail trusted: SPF, DKIM, DMARC."""


@dns_group.command("check")
@click.argument("domain")
@click.option("--nameserver", default=None,
              help="Ask this resolver, IP[:PORT] (default: the system's).")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per lookup.")
@pass_context
def dns_check(ctx: Context, domain: str, nameserver: str | None, timeout: float) -> None:
    """Print the SPF, DKIM and DMARC records DOMAIN should publish, and check what it
    publishes: SPF present and not +all, the DKIM key matching the configured one, DMARC
    with p=quarantine or p=reject. Exits 1 when something needs fixing."""
    import ipaddress
    from urllib.parse import urlsplit

    from sealgate.dns_lookup import txt
    from sealgate.mail import dkim

    settings = ctx.config()
    try:
        domain = config._domain(domain)
    except ValueError as error:
        raise click.BadParameter(f"{domain!r} {error}", param_hint="DOMAIN") from None
    resolver = _resolver(nameserver, timeout)
    key = dkim.DkimKey.from_config(settings)
    host = urlsplit(settings.server.base_url).hostname or ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            host = ""
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            host = ""
    selector = key.selector if key else settings.dkim.selector
    dkim_name, dmarc_name = f"{selector}._domainkey.{domain}", f"_dmarc.{domain}"
    click.echo(f"Records to publish for {domain}:")
    click.echo(f"  {domain}.  TXT  \"{dkim.spf_advice(host)}\"")
    if key is not None:
        click.echo(f"  {dkim_name}.  TXT  \"{key.record()}\"")
    click.echo(f"  {dmarc_name}.  TXT  \"{dkim.dmarc_advice(domain)}\"")
    findings = [dkim.check_spf(domain, txt(resolver, domain))]
    if key is None:
        findings.append(dkim.Finding(False, "DKIM: no key configured (dkim.key): run "
                                            "`sealgate dkim init`"))
    else:
        if not (domain == key.domain or domain.endswith("." + key.domain)):
            click.echo(f"  (Sealgate signs with d={key.domain}: its record belongs there)")
        findings.append(dkim.check_dkim(dkim_name, txt(resolver, dkim_name), key))
    findings.append(dkim.check_dmarc(dmarc_name, txt(resolver, dmarc_name)))
    click.echo("Published:")
    for finding in findings:
        click.echo(f"  {'ok  ' if finding.ok else 'FAIL'}  {finding.line}")
    wrong = sum(not finding.ok for finding in findings)
    if wrong:
        raise SealgateError(f"{wrong} of {len(findings)} record(s) for {domain} need fixing")


def _resolver(nameserver: str | None, timeout: float) -> Any:
    from sealgate.dns_lookup import DnsError, resolver

    try:
        return resolver([nameserver] if nameserver is not None else [], timeout)
    except DnsError as error:
        if nameserver is not None:
            raise click.BadParameter(str(error), param_hint="--nameserver") from None
        raise SealgateError(f"{error}: give --nameserver") from None


@cli.group()
def db() -> None:
    """The vault database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Apply pending schema migrations."""
    from sealgate.vault.database import Database

    settings = ctx.config()
    database = Database(settings.database_url)
    try:
        database.upgrade()
        click.echo(f"database at schema revision {database.revision()}")
    finally:
        database.dispose()


@cli.command("manifest")
@click.option("--base-url", default=None, metavar="https://HOST",
              help="Where Outlook reaches this server (default: server.base_url).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the manifest to FILE (default: standard output).")
@pass_context
def manifest(ctx: Context, base_url: str | None, output: str | None) -> None:
    """Render the Outlook add-in manifest (manifest.xml) for this deployment."""
    from urllib.parse import urlsplit

    from sealgate.server.addin_manifest import render_manifest

    settings = ctx.config()
    text = render_manifest(settings, base_url or settings.server.base_url)
    server_host = urlsplit(settings.server.base_url).netloc.lower()
    if base_url and urlsplit(base_url.strip()).netloc.lower() != server_host:
        click.echo(f"sealgate: warning: --base-url is not on the host of server.base_url "
                   f"({server_host}), from which the server names the add-in's script and "
                   "token audience: single sign-on can fail until both name one host", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        raise SealgateError(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(f"wrote     {output}")


def main(argv: list[str] | None = None) -> None:
    os.umask(0o077)  # everything Sealgate writes (database, blobs, sockets) is the owner's only
    try:
        cli.main(args=argv, prog_name="sealgate")
    except SealgateError as error:
        click.echo(f"sealgate: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
