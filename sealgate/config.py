"""One configuration: `sealgate.toml` in the home directory, every value overridable from the
environment as SEALGATE_<SECTION>__<KEY> (e.g. SEALGATE_SERVER__LISTEN=0.0.0.0:8025).

Everything is validated when it is loaded; a wrong value raises ConfigError with one line naming
the key, the value, where it came from and what is allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sealgate.errors import ConfigError

CONFIG_FILE = "sealgate.toml"
ENV_PREFIX = "SEALGATE_"
HOME_ENV = "SEALGATE_HOME"
DEFAULT_HOME = "var"

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")


def _split_commas(value: Any) -> Any:
    """Lists may be written as `a, b` in the environment."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if not _DOMAIN.match(value):
        raise ValueError("must be a domain name such as example.org")
    return value


def _optional_domain(value: str) -> str:
    return _domain(value) if value else value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value.rstrip("/")


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value else value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8025")
    return value


def _optional_host_port(value: str) -> str:
    return _host_port(value) if value else value


def _optional_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if value and not (at and local and _DOMAIN.match(domain.lower())):
        raise ValueError("must be an address such as no-reply@example.org")
    return value


def _milter_socket(value: str) -> str:
    """pymilter's socket syntax: unix:/path or inet:PORT@HOST (inet6: likewise)."""
    kind, sep, rest = value.partition(":")
    if sep and kind == "unix" and rest:
        return value
    if sep and kind in ("inet", "inet6"):
        port, at, host = rest.partition("@")
        if port.isdigit() and 0 < int(port) < 65536 and (not at or host):
            return value
    raise ValueError("must be unix:/path/to/socket or inet:PORT@HOST")


def _database_url(value: str) -> str:
    if value and not value.startswith(("sqlite:///", "postgresql+psycopg://")):
        raise ValueError("must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (or empty)")
    return value


Domain = Annotated[str, AfterValidator(_domain)]
Domains = Annotated[list[Domain], BeforeValidator(_split_commas)]
Strings = Annotated[list[str], BeforeValidator(_split_commas)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class OrganisationConfig(_Section):
    name: str = Field(default="Example Organisation", min_length=1, max_length=200)
    domains: Domains = Field(default_factory=lambda: ["example.org"], min_length=1)
    footer: str = Field(default="", max_length=1000, description="postal address, contact")
    disclaimer: str = Field(default="", max_length=4000)
    colour: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f4e79"
    # A PNG, JPEG, GIF or SVG file (relative to the home), shown on portal pages and notices.
    logo: str = ""
    support: str = Field(default="", max_length=200,
                         description="who recipients ask for help: an address, phone or URL")


class ServerConfig(_Section):
    listen: Annotated[str, AfterValidator(_host_port)] = "127.0.0.1:8025"
    base_url: Annotated[str, AfterValidator(_http_url)] = "http://127.0.0.1:8025"
    workers: int = Field(default=2, ge=1, le=64)
    secret_key: str = Field(default="", description="Flask session key; `sealgate init` sets it")
    # How many reverse proxies in front set X-Forwarded-For/-Proto (0: none; trust nothing).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # Who may read /metrics: addresses or networks (counts only, but not for the world).
    metrics_allow: Strings = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, allowed: list[str]) -> list[str]:
        for entry in allowed:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return allowed


class MilterConfig(_Section):
    listen: Annotated[str, AfterValidator(_milter_socket)] = "unix:milter.sock"
    subject_keywords: Strings = Field(default_factory=lambda: ["encrypt/"], min_length=1)
    # Where the milter deposits messages; empty: the server's own listen address.
    server_url: Annotated[str, AfterValidator(_optional_http_url)] = ""
    # The MTA listener without the milter, for the re-injected half of a split message.
    reinject: Annotated[str, AfterValidator(_host_port)] = "127.0.0.1:10026"
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per server call")
    # The group whose members (the MTA's smtpd) may connect to a unix milter socket.
    socket_group: str = "postfix"
    # Prometheus metrics of the milter on their own HOST:PORT (messages seen, triggered by
    # cause, verdict and DLP time); empty: none. Keep it on loopback.
    metrics_listen: Annotated[str, AfterValidator(_optional_host_port)] = ""
    # How often the milter asks the server for settings the administrators changed (and
    # reloads when there are); 0: never, only at start and on SIGHUP.
    reload_seconds: float = Field(default=5.0, ge=0, le=3600)


class PortalConfig(_Section):
    require_mfa: bool = Field(default=False, description="every recipient needs an authenticator")
    code_minutes: int = Field(default=10, ge=1, le=60, description="one-time code lifetime")
    code_attempts: int = Field(default=5, ge=1, le=20, description="guesses per one-time code")
    lockout_failures: int = Field(default=5, ge=1, le=100,
                                  description="failed checks before an account is locked")
    lockout_minutes: int = Field(default=15, ge=1, le=1440)
    session_minutes: int = Field(default=30, ge=5, le=1440, description="idle sign-out")
    expiry_days: int = Field(default=0, ge=0, le=3650,
                             description="default message lifetime; 0: no expiry")
    reply_limit_mb: int = Field(default=25, ge=1, le=60, description="a reply with attachments")
    notify_sender: bool = Field(default=True,
                                description="tell the sender a message went out securely")
    read_receipts: bool = Field(default=True,
                                description="tell the sender when each recipient first opens it")
    # Shared rate-limit counters for several hosts, e.g. redis://127.0.0.1:6379/0;
    # empty: each server process counts on its own.
    rate_limit_storage: str = ""


class OutboundConfig(_Section):
    """Mail the server itself sends: codes, receipts, replies."""

    # The MTA listener to hand it to; empty: the milter's re-injection listener.
    relay: Annotated[str, AfterValidator(_optional_host_port)] = ""
    # Empty: no-reply@ the organisation's first domain.
    from_address: Annotated[str, AfterValidator(_optional_address)] = ""


class AddinConfig(_Section):
    """The Outlook add-in and the API it calls with Microsoft identity platform tokens."""

    # The add-in's app registration in Entra ID (Azure AD); empty: the add-in API is off.
    client_id: str = ""
    # Tenants whose users may call the API (tenant ids); no tenant: nobody.
    tenants: Strings = Field(default_factory=list)
    scope: str = "access_as_user"
    # Where the signing keys are published; tokens must be signed by one of them.
    jwks_url: Annotated[str, AfterValidator(_http_url)] = (
        "https://login.microsoftonline.com/common/discovery/v2.0/keys")
    # The issuer every token must name; {tenant} is the token's own tenant id.
    issuer: str = "https://login.microsoftonline.com/{tenant}/v2.0"
    # The manifest's own id (a GUID); `sealgate init` makes one.
    manifest_id: str = ""
    max_scan_mb: int = Field(default=25, ge=1, le=60, description="largest draft to scan")


class ExchangeConfig(_Section):
    """Writing secure messages back into internal recipients' mailboxes (sealgate/exchange):
    Exchange Online through Microsoft Graph, or Exchange Server through EWS."""

    # "" (off), "graph" (Exchange Online) or "ews" (Exchange Server 2016, 2019, SE).
    backend: Annotated[str, Field(pattern="^(|graph|ews)$")] = ""
    # The app registration that exchanges the add-in user's token (on-behalf-of); empty
    # client_id: the add-in's. A client secret, or a certificate (PEM with its private key).
    client_id: str = ""
    client_secret: str = ""
    client_certificate: str = ""
    # Tenant-wide, administrator-approved access (client credentials) instead of each
    # user's delegated token: needs the tenant and application permissions.
    app_only: bool = False
    tenant_id: str = ""
    authority_host: Annotated[str, AfterValidator(_http_url)] = "https://login.microsoftonline.com"
    graph_url: Annotated[str, AfterValidator(_http_url)] = "https://graph.microsoft.com/v1.0"
    # EWS: the endpoint, and how to sign in: "oauth" (tokens as above), "ntlm" or "basic"
    # (a service account with impersonation rights, for on-premises servers).
    ews_url: str = ""
    ews_auth: Annotated[str, Field(pattern="^(oauth|ntlm|basic)$")] = "oauth"
    ews_username: str = ""
    ews_password: str = ""
    # The CAs to trust for these services, instead of the system's (a PEM file; empty: the
    # system's).
    ca_file: str = ""
    # Replace the placeholder automatically when an internal recipient first opens the
    # message in the add-in (otherwise: the "Save to mailbox" button).
    auto_save: bool = False
    timeout: float = Field(default=30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _usable(self) -> ExchangeConfig:
        if self.backend == "ews" and not self.ews_url.startswith("https://"):
            raise ValueError("backend = \"ews\" needs ews_url, an https:// address")
        if self.backend == "ews" and self.ews_auth != "oauth" \
                and not (self.ews_username and self.ews_password):
            raise ValueError(f"ews_auth = \"{self.ews_auth}\" needs ews_username and "
                             "ews_password (a service account with impersonation rights)")
        uses_tokens = self.backend == "graph" or (self.backend == "ews"
                                                  and self.ews_auth == "oauth")
        if uses_tokens and not (self.client_secret or self.client_certificate):
            raise ValueError("writing back with Microsoft tokens needs client_secret or "
                             "client_certificate")
        if uses_tokens and self.app_only and not self.tenant_id:
            raise ValueError("app_only needs tenant_id")
        return self


_TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class AdminConfig(_Section):
    """The admin console's sign-in. A password and an authenticator always work; Microsoft
    sign-in (Entra ID, OpenID Connect) is an optional way in for existing administrators."""

    microsoft_signin: bool = False
    # The app registration to sign in with: a Web platform whose redirect URI is
    # <server.base_url>/admin/signin/microsoft/callback. Both empty: Exchange's registration
    # (exchange.client_id or addin.client_id, with exchange.client_secret or
    # exchange.client_certificate).
    client_id: str = ""
    client_secret: str = ""
    # The organisation's tenant id (a GUID): only its accounts may sign in.
    tenant_id: str = ""
    authority_host: Annotated[str, AfterValidator(_http_url)] = "https://login.microsoftonline.com"
    # The CAs to trust for the sign-in service (a PEM file; empty: the system's).
    ca_file: str = ""
    # A Microsoft sign-in whose token says it used multi-factor authentication (amr "mfa")
    # counts as both steps; without that claim, or when false, the authenticator code is
    # asked as after a password.
    require_mfa_claim: bool = True

    @field_validator("tenant_id")
    @classmethod
    def _tenant_guid(cls, value: str) -> str:
        if value and not _TENANT_ID.match(value.lower()):
            raise ValueError("must be the directory (tenant) id, a GUID such as "
                             "72f988bf-86f1-41af-91ab-2d7cd011db47")
        return value.lower()


_DETECTOR_NAME = r"^[A-Z][A-Z0-9_]{1,39}$"


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        at = f" at position {error.pos}" if error.pos is not None else ""
        raise ValueError(f"is not a valid regular expression: {error.msg}{at}") from None
    if re.compile(value).match(""):
        raise ValueError("matches the empty string, so it would match everywhere")
    return value


class CustomDetectorConfig(_Section):
    """An organisation's own identifier: a regular expression, or a list of keywords."""

    name: Annotated[str, Field(pattern=_DETECTOR_NAME)]
    pattern: Annotated[str, AfterValidator(_regex)] = ""
    keywords: Strings = Field(default_factory=list)
    ignore_case: bool = True
    confidence: Annotated[str, Field(pattern="^(low|medium|high)$")] = "medium"

    @model_validator(mode="after")
    def _pattern_or_keywords(self) -> CustomDetectorConfig:
        if not self.pattern and not self.keywords:
            raise ValueError(f"detector {self.name} needs a pattern, keywords, or both")
        return self


class DlpPolicyConfig(_Section):
    name: str = Field(min_length=1, max_length=100)
    detectors: Strings = Field(min_length=1)
    action: Annotated[str, Field(pattern="^(encrypt|quarantine|block|notify)$")] = "encrypt"
    min_count: int = Field(default=1, ge=1, le=10000)
    min_confidence: Annotated[str, Field(pattern="^(low|medium|high)$")] = "medium"
    # Empty: everyone. An address, or a domain for everyone there.
    senders: Strings = Field(default_factory=list)
    # Empty: any external recipient.
    recipient_domains: Domains = Field(default_factory=list)
    allow_send_as_is: bool = False  # quarantine: may the sender release it unprotected


class DlpConfig(_Section):
    """Data-leak prevention: which policies look at outbound mail and what they do."""

    enabled: bool = True
    # Curated policy packs: healthcare (HIPAA PHI), financial (PCI, GLBA), privacy (US PII),
    # education (FERPA).
    packs: Strings = Field(default_factory=lambda: ["healthcare", "financial", "privacy",
                                                    "education"])
    pack_action: Annotated[str, Field(pattern="^(encrypt|quarantine|block|notify)$")] = \
        "encrypt"
    min_confidence: Annotated[str, Field(pattern="^(low|medium|high)$")] = "medium"
    # An attachment that cannot be read (encrypted, corrupt, over a limit): "sensitive"
    # (the unreadable-attachment policy applies) or "ignore".
    unreadable: Annotated[str, Field(pattern="^(sensitive|ignore)$")] = "sensitive"
    unreadable_action: Annotated[str, Field(pattern="^(encrypt|quarantine|block|notify)$")] = \
        "encrypt"
    # Where "notify" policies send their report; empty: reports are only logged and audited.
    notify_address: Annotated[str, AfterValidator(_optional_address)] = ""
    quarantine_days: int = Field(default=14, ge=1, le=365,
                                 description="a held message is discarded after this")
    max_scan_mb: int = Field(default=50, ge=1, le=500, description="largest message scanned")
    attachment_seconds: float = Field(default=10.0, gt=0, le=120)
    archive_members: int = Field(default=500, ge=1, le=100000)
    archive_inflated_mb: int = Field(default=100, ge=1, le=10000)
    policies: list[DlpPolicyConfig] = Field(default_factory=list)
    detectors: list[CustomDetectorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_names(self) -> DlpConfig:
        from sealgate.dlp.detectors import TYPES
        from sealgate.dlp.policies import PACKS, UNREADABLE

        unknown_packs = [p for p in self.packs if p not in PACKS]
        if unknown_packs:
            raise ValueError(f"unknown pack {unknown_packs[0]!r} (known: {', '.join(PACKS)})")
        custom = [d.name for d in self.detectors]
        clash = [name for name in custom if name in TYPES]
        if clash:
            raise ValueError(f"detector {clash[0]} is a built-in type: choose another name")
        known = {*TYPES, *custom, UNREADABLE}
        for policy in self.policies:
            missing = [d for d in policy.detectors if d not in known]
            if missing:
                raise ValueError(f"policy {policy.name!r} names unknown detector {missing[0]} "
                                 f"(known: {', '.join(sorted(known))})")
        return self


_METHODS = ("tls", "smime", "pgp", "portal")


def _method_order(value: Any) -> Any:
    value = _split_commas(value)
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of methods")
    unknown = [m for m in value if m not in _METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r} (allowed: {', '.join(_METHODS)})")
    if len(set(value)) != len(value):
        raise ValueError("names a method twice")
    return value


MethodOrder = Annotated[list[str], BeforeValidator(_method_order)]


class RoutingConfig(_Section):
    """How each recipient of a protected message gets it: the first method in the order that
    fits (verified TLS, S/MIME, PGP, the portal)."""

    order: MethodOrder = Field(default_factory=lambda: list(_METHODS))
    # Per recipient domain (the closest parent domain applies) and per recipient address.
    domains: dict[Domain, MethodOrder] = Field(default_factory=dict)
    recipients: dict[str, MethodOrder] = Field(default_factory=dict)
    # A second subject keyword: the sender wants the portal for this message.
    portal_keywords: Strings = Field(default_factory=lambda: ["secure/"])
    portal_enabled: bool = True
    # When nothing fits (the portal off): "bounce" to the sender with the reason, or "hold".
    no_method: Annotated[str, Field(pattern="^(bounce|hold)$")] = "bounce"
    # S/MIME and PGP: replace the outer Subject with a neutral one (RFC 9788).
    protect_subject: bool = False
    placeholder_subject: str = Field(default="Encrypted message", min_length=1, max_length=100)
    # Verified TLS that fails at delivery: how long Sealgate retries before the portal (0: the
    # portal at the first failure), and how often it tries again meanwhile.
    tls_fallback_minutes: float = Field(default=60, ge=0, le=7 * 24 * 60)
    tls_retry_minutes: float = Field(default=10, gt=0, le=24 * 60)
    # Set once the MTA has the verified-TLS transports (deploy/postfix: the re-injection
    # listener's cleanup service, sealgate-tls and sealgate-dane). Until then verified TLS is
    # never chosen: a copy routed that way would leave over the MTA's ordinary transport,
    # unverified. Sendmail cannot enforce it for one copy: leave it off there.
    mta_enforces_tls: bool = False
    # Where the MTA's delivery reports on verified-TLS copies go; the milter takes them.
    # Empty: sealgate-dsn@ the first organisation domain.
    return_address: Annotated[str, AfterValidator(_optional_address)] = ""
    # Probing recipient domains for verified TLS: the resolvers to ask (IP or IP:PORT; empty:
    # the system's, which must validate DNSSEC for DANE to count), the CAs to trust (a PEM
    # file, instead of the system's, which the MTA's smtp_tls_CApath should match), the port MX
    # hosts listen on, and whether loopback MX addresses may be probed (tests only).
    dns_servers: Strings = Field(default_factory=list)
    tls_ca_file: str = ""
    probe_port: int = Field(default=25, ge=1, le=65535)
    probe_loopback: bool = False
    # Take S/MIME certificates from valid signed mail the organisation receives; the CAs
    # their chains must reach (a PEM file; empty: the system's).
    harvest_certificates: bool = False
    harvest_ca_file: str = ""
    # Look up recipients' OpenPGP keys by Web Key Directory.
    wkd: bool = True
    # Sign S/MIME copies with the organisation's key and certificate (PEM files, relative to
    # the home); both empty: not signed. Signing also protects the content from tampering.
    smime_sign_key: str = ""
    smime_sign_certificate: str = ""

    @field_validator("dns_servers")
    @classmethod
    def _resolvers(cls, servers: list[str]) -> list[str]:
        for server in servers:
            address, _, port = server.rpartition(":") if server.count(":") == 1 \
                else (server, "", "53")
            try:
                ipaddress.ip_address(address)
                if not 0 < int(port) < 65536:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{server!r} is not IP or IP:PORT") from None
        return servers

    @model_validator(mode="after")
    def _both_or_neither(self) -> RoutingConfig:
        if bool(self.smime_sign_key) != bool(self.smime_sign_certificate):
            raise ValueError("smime_sign_key and smime_sign_certificate go together: give "
                             "both, or neither")
        return self


class DkimConfig(_Section):
    """DKIM signatures on the mail Sealgate originates (notifications, codes, receipts,
    re-injected copies): `sealgate dkim init` makes the key."""

    selector: Annotated[str, Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")] \
        = "sealgate"
    # The RSA private key (PEM, relative to the home); empty: nothing is signed.
    key: str = ""
    # The signing domain (d=); empty: the first organisation domain.
    domain: Annotated[str, AfterValidator(_optional_domain)] = ""


class InternalApiConfig(_Section):
    secret: str = Field(default="", description="milter → server shared secret; set by init")


class DatabaseConfig(_Section):
    url: Annotated[str, AfterValidator(_database_url)] = ""


class VaultConfig(_Section):
    keyring: str = "keyring.json"
    blob_dir: str = "blobs"
    durable: bool = Field(
        default=True, description="fsync every blob and commit before a deposit is acknowledged"
    )


class LoggingConfig(_Section):
    # "text": a line for people; "json": one JSON object per line, for a log collector.
    format: Annotated[str, Field(pattern="^(text|json)$")] = "text"


class Config(_Section):
    home: Path
    organisation: OrganisationConfig = Field(default_factory=OrganisationConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    milter: MilterConfig = Field(default_factory=MilterConfig)
    portal: PortalConfig = Field(default_factory=PortalConfig)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)
    addin: AddinConfig = Field(default_factory=AddinConfig)
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    dlp: DlpConfig = Field(default_factory=DlpConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    dkim: DkimConfig = Field(default_factory=DkimConfig)
    internal_api: InternalApiConfig = Field(default_factory=InternalApiConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    vault: VaultConfig = Field(default_factory=VaultConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    def path(self, value: str) -> Path:
        """A path from the configuration: relative ones are relative to the home directory."""
        candidate = Path(value)
        return candidate if candidate.is_absolute() else self.home / candidate

    @property
    def keyring_path(self) -> Path:
        return self.path(self.vault.keyring)

    @property
    def blob_dir(self) -> Path:
        return self.path(self.vault.blob_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'sealgate.db'}"

    @property
    def deposit_url(self) -> str:
        """The server the milter deposits with."""
        return self.milter.server_url or f"http://{self.server.listen}"

    @property
    def relay(self) -> tuple[str, int]:
        host, _, port = (self.outbound.relay or self.milter.reinject).rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def return_address(self) -> str:
        return self.routing.return_address or f"sealgate-dsn@{self.organisation.domains[0]}"

    @property
    def from_address(self) -> str:
        return self.outbound.from_address or f"no-reply@{self.organisation.domains[0]}"

    @property
    def dkim_domain(self) -> str:
        return self.dkim.domain or self.organisation.domains[0]

    @property
    def logo_path(self) -> Path | None:
        return self.path(self.organisation.logo) if self.organisation.logo else None

    @property
    def milter_socket(self) -> str:
        kind, _, rest = self.milter.listen.partition(":")
        return f"unix:{self.path(rest)}" if kind == "unix" else self.milter.listen


SECTIONS = {
    name: field.annotation
    for name, field in Config.model_fields.items()
    if name != "home"
}


def resolve_home(home: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """--home wins, then SEALGATE_HOME, then ./var."""
    chosen = home if home is not None else environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise ConfigError(f"cannot read {path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """SEALGATE_<SECTION>__<KEY> values, and for each dotted key the variable it came from."""
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        section, _, key = variable[len(ENV_PREFIX):].lower().partition("__")
        if section not in SECTIONS:
            raise ConfigError(
                f"{variable}: unknown section '{section}' (allowed: {', '.join(SECTIONS)})"
            )
        value: Any = raw
        if raw.lstrip().startswith("["):
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(f"{variable} = {raw!r}: not a valid list") from None
        values.setdefault(section, {})[key] = value
        origins[f"{section}.{key}"] = variable
    return values, origins


def _merge(base: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = dict(base)
    for section, keys in overrides.items():
        current = merged.get(section, {})
        merged[section] = {**current, **keys} if isinstance(current, dict) else keys
    return merged


def _allowed(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """For an unknown key, the list of keys that are allowed where it stood."""
    for part in error["loc"][:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
    return ", ".join(name for name in model.model_fields if name != "home")


@dataclass(frozen=True)
class WrongValue:
    """One wrong value in parts: the one line an operator reads (`str`), and the key and the
    reason a form shows beside the field."""

    key: str  # dotted: "dlp.detectors.0.pattern"
    reason: str
    origin: str  # a file, an environment variable, the admin console
    value: str | None = None  # as written (repr); None: not repeated (a whole section)

    def __str__(self) -> str:
        shown = "" if self.value is None else f" = {self.value}"
        return f"{self.key}{shown} (from {self.origin}): {self.reason}"


def wrong_value(error: Mapping[str, Any], origin: str) -> WrongValue:
    """A validation error (not an unknown key) in parts. A whole section's check names the
    section, not every value in it."""
    value = None if isinstance(error["input"], Mapping) else repr(error["input"])
    return WrongValue(".".join(str(part) for part in error["loc"]),
                      error["msg"].removeprefix("Value error, "), origin, value)


def describe(error: Mapping[str, Any], origin: str) -> str:
    if error["type"] == "extra_forbidden":
        key = ".".join(str(part) for part in error["loc"])
        return f"{key}: unknown key (from {origin}); allowed: {_allowed(error, Config)}"
    return str(wrong_value(error, origin))


def load(home: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration of the home directory."""
    environ = os.environ if environ is None else environ
    home_path = resolve_home(home, environ)
    file_path = home_path / CONFIG_FILE
    from_file = read_file(file_path)
    if "home" in from_file:
        raise ConfigError(
            f"{file_path}: 'home' cannot be set in the file; use --home or {HOME_ENV}")
    overrides, origins = env_overrides(environ)
    try:
        loaded = Config(home=home_path, **_merge(from_file, overrides))
    except ValidationError as exc:
        first = exc.errors()[0]
        dotted = ".".join(str(part) for part in first["loc"][:2])
        origin = origins.get(dotted, str(file_path))
        raise ConfigError(describe(first, origin)) from None
    problem = dkim_key_problem(loaded, origins.get("dkim.key", str(file_path)))
    if problem is not None:
        raise ConfigError(str(problem))
    _check_admin_signin(loaded, origins, str(file_path))
    return loaded


def dkim_key_problem(loaded: Config, origin: str) -> WrongValue | None:
    """A configured DKIM key must be there and usable: an RSA key of 2048 bits or more."""
    if not loaded.dkim.key:
        return None
    from sealgate.mail.dkim import DkimError, check_private_key, read_key_file

    try:
        check_private_key(read_key_file(loaded.path(loaded.dkim.key)))
    except DkimError as error:
        return WrongValue("dkim.key", str(error), origin, repr(loaded.dkim.key))
    return None


def _check_admin_signin(loaded: Config, origins: Mapping[str, str], file_origin: str) -> None:
    """Microsoft sign-in for administrators: the tenant is set and is one of the
    organisation's (addin.tenants, when listed), and there is an app registration to sign in
    with. (Here rather than in AdminConfig, whose errors would print the whole section, secret
    included.)"""
    admin = loaded.admin
    if bool(admin.client_id) != bool(admin.client_secret):
        given, missing = ("admin.client_id", "admin.client_secret") if admin.client_id \
            else ("admin.client_secret", "admin.client_id")
        raise ConfigError(f"{given} is set without {missing} (from "
                          f"{origins.get(given, file_origin)}): give both (the console's own app "
                          "registration), or neither (Exchange's)")
    if not admin.microsoft_signin:
        return
    if not admin.tenant_id:
        origin = origins.get("admin.microsoft_signin", file_origin)
        raise ConfigError(f"admin.microsoft_signin = true (from {origin}): needs "
                          "admin.tenant_id, the organisation's tenant id")
    tenants = [tenant.lower() for tenant in loaded.addin.tenants]
    if tenants and admin.tenant_id not in tenants:
        origin = origins.get("admin.tenant_id", file_origin)
        raise ConfigError(f"admin.tenant_id = {admin.tenant_id!r} (from {origin}): must be one "
                          f"of addin.tenants ({', '.join(loaded.addin.tenants)})")
    exchange = loaded.exchange
    if not admin.client_id and not ((exchange.client_id or loaded.addin.client_id)
                                    and (exchange.client_secret or exchange.client_certificate)):
        origin = origins.get("admin.microsoft_signin", file_origin)
        raise ConfigError(f"admin.microsoft_signin = true (from {origin}): needs an app "
                          "registration: admin.client_id and admin.client_secret, or Exchange's "
                          "(exchange.client_id or addin.client_id, with exchange.client_secret "
                          "or exchange.client_certificate)")


INITIAL_CONFIG = """\
# Sealgate configuration. Every value can be overridden from the environment as
# SEALGATE_<SECTION>__<KEY>, e.g. SEALGATE_SERVER__LISTEN=0.0.0.0:8025.
# Relative paths are relative to this file's directory (the Sealgate home).

[organisation]
name = "Example Organisation"
# Mail to these domains is internal and is delivered as is.
domains = ["example.org"]
# Shown at the foot of every notification and portal page.
footer = ""
disclaimer = ""
colour = "#1f4e79"
# A PNG, JPEG, GIF or SVG file, relative to this directory; and who recipients ask for help.
logo = ""
support = ""

[server]
listen = "127.0.0.1:8025"
# The public URL of the portal, used in every link Sealgate sends.
base_url = "http://127.0.0.1:8025"
workers = 2
# Reverse proxies in front of the server that set X-Forwarded-For (nginx: 1).
trusted_proxies = 0
secret_key = "{secret_key}"
# Who may read the Prometheus metrics at /metrics (addresses or networks).
metrics_allow = ["127.0.0.1", "::1"]

[milter]
# unix:PATH (relative to the home) or inet:PORT@HOST
listen = "unix:milter.sock"
subject_keywords = ["encrypt/"]
# The MTA listener that does not run the milter (see deploy/postfix/master.cf.example).
reinject = "127.0.0.1:10026"
# Seconds between the milter's checks for settings changed in the admin console (0: only
# at start and on SIGHUP, `systemctl reload sealgate-milter`).
reload_seconds = 5

[portal]
# Every recipient must use an authenticator app (TOTP) as a second step.
require_mfa = false
code_minutes = 10
code_attempts = 5
lockout_failures = 5
lockout_minutes = 15
session_minutes = 30
# Messages can no longer be read this many days after they were sent; 0: no expiry.
expiry_days = 0
reply_limit_mb = 25
notify_sender = true
read_receipts = true
# e.g. redis://127.0.0.1:6379/0 to share rate limits between hosts; empty: per process.
rate_limit_storage = ""

[outbound]
# Where the server hands the mail it sends (codes, receipts, replies); empty: milter.reinject.
relay = ""
# Empty: no-reply@ the first organisation domain.
from_address = ""

[addin]
# The Outlook add-in's app registration (Entra ID): its client id, the tenants whose users
# may use it, and the scope the add-in asks for. Empty client_id: the add-in API is off.
client_id = ""
tenants = []
scope = "access_as_user"
jwks_url = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
issuer = "https://login.microsoftonline.com/{{tenant}}/v2.0"
manifest_id = "{manifest_id}"
max_scan_mb = 25

[admin]
# Administrators may also sign in with their Microsoft (Entra ID) account, matched by its
# username or email to an existing administrator. The app registration needs the redirect
# URI <base_url>/admin/signin/microsoft/callback; empty client_id and client_secret: the
# [exchange] registration's. tenant_id: the organisation's tenant (one of addin.tenants).
microsoft_signin = false
client_id = ""
client_secret = ""
tenant_id = ""
authority_host = "https://login.microsoftonline.com"
# A sign-in Microsoft reports as multi-factor (amr "mfa") replaces the authenticator code;
# false: the code is always asked.
require_mfa_claim = true

[dlp]
# Data-leak prevention on outbound mail to external recipients. Curated packs: healthcare,
# financial, privacy, education; each acts at medium confidence and above.
enabled = true
packs = ["healthcare", "financial", "privacy", "education"]
# encrypt, quarantine (held until the sender decides), block (refused) or notify (delivered,
# reported to notify_address).
pack_action = "encrypt"
min_confidence = "medium"
# An encrypted or unreadable attachment: "sensitive" (unreadable_action applies) or "ignore".
unreadable = "sensitive"
unreadable_action = "encrypt"
notify_address = ""
quarantine_days = 14
# Your own policies and detectors, for example:
# [[dlp.detectors]]
# name = "PROJECT_CODE"
# pattern = "PRJ-[0-9]{{6}}"
# [[dlp.policies]]
# name = "Project codes"
# detectors = ["PROJECT_CODE"]
# action = "quarantine"
# allow_send_as_is = true

[routing]
# How each outside recipient of a protected message gets it: the first method in this order
# that fits. tls: delivered as is over verified TLS; smime / pgp: encrypted to the recipient's
# certificate or key on file; portal: a notification and the secure portal.
order = ["tls", "smime", "pgp", "portal"]
# The sender asks for the portal for one message with this subject keyword.
portal_keywords = ["secure/"]
portal_enabled = true
# Nothing fits (portal off): "bounce" to the sender with the reason, or "hold".
no_method = "bounce"
protect_subject = false
# Verified TLS needs the Postfix transports of deploy/postfix; set true once they are in.
mta_enforces_tls = false
tls_fallback_minutes = 60
tls_retry_minutes = 10
# Delivery reports for verified-TLS copies; empty: sealgate-dsn@ the first domain. The MTA
# must hand its own reports to the milter (Postfix: internal_mail_filter_classes = bounce).
return_address = ""
# Resolvers for the verified-TLS probes (IP or IP:PORT); empty: the system's.
dns_servers = []
# Sign S/MIME copies with the organisation's key and certificate (PEM files); empty: unsigned.
smime_sign_key = ""
smime_sign_certificate = ""
# Per domain or recipient, e.g.:
# [routing.domains]
# "partner.example" = ["smime", "portal"]

[dkim]
# DKIM-sign the mail Sealgate sends from the organisation's domain (notifications, codes,
# receipts, re-injected copies). `sealgate dkim init` makes the key and prints these lines
# and the DNS record to publish; `sealgate dns check DOMAIN` checks what is published.
# key = "dkim/sealgate.pem"
# selector = "sealgate"
# Empty: the first organisation domain.
# domain = ""

[internal_api]
# Shared by the milter and the server; keep this file readable by them only.
secret = "{internal_secret}"

[database]
# Empty: SQLite in the home directory. Or postgresql+psycopg://USER:PASSWORD@HOST/DB
url = ""

[vault]
keyring = "keyring.json"
blob_dir = "blobs"
durable = true

[logging]
# "text", or "json" for one JSON object per line (for a log collector).
format = "text"
"""


def initial_config(secret_key: str, internal_secret: str, manifest_id: str) -> str:
    return INITIAL_CONFIG.format(secret_key=secret_key, internal_secret=internal_secret,
                                 manifest_id=manifest_id)
