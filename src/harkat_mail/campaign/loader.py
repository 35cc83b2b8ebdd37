"""Campaign YAML -> validated ``Campaign``. Errors name the file, the line and the key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..models import (
    DEFAULT_SECRET_ENV,
    Campaign,
    DkimConfig,
    Identification,
    ListConfig,
    RetryPolicy,
    UnsubscribeConfig,
    send_log_kind,
)
from . import schedule
from .bounces import bounce_config
from .guidance import suggest
from .headers import dns_name, https_url
from .headers import list_id as check_list_id
from .languages import check_language_keys
from .letter import letter_config
from .smtp import smtp_relays
from .yamldoc import LANG_RE, Doc, Reader, read_document

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOP_KEYS = {
    "name",
    "from",
    "reply_to",
    "subject",
    "template",
    "list",
    "segments",
    "language",
    "vars",
    "smtp",
    "send_log",
    "outbox",
    "previews",
    "unsubscribe",
    "list_id",
    "bilingual",
    "retry",
    "purpose",
    "identification",
    "dkim",
    "lease",
    "timezone",
    "window",
    "bounces",
    "letter",
}


_VALIDATE = ("syntax", "deliverability")
_DEDUPE = ("email", "member_id")
_BILINGUAL = ("separate", "combined")
_PURPOSES = ("informational", "commercial")


def _segment(r: Reader, spec: object, named: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if spec is None:
        return "all", {}
    if isinstance(spec, str):
        if spec not in named:
            known = ", ".join(sorted(named)) or "none defined"
            raise r.doc.error(("list", "segment"), f"no segment named {spec!r} ({known})")
        return spec, r.map(named[spec], ("segments", spec), None)
    filters = r.map(spec, ("list", "segment"), None)
    label = ", ".join(f"{k}={v}" for k, v in filters.items())
    return label or "all", filters


def project_suppression(campaign_file: Path) -> Path:
    """The project-wide suppression file (unsubscribes, bounces) every campaign applies.

    ``suppression.txt`` in the project folder: the parent of ``campaigns/`` when the campaign
    lives there, else the campaign's own folder.
    """
    folder = campaign_file.resolve().parent
    root = folder.parent if folder.name == "campaigns" else folder
    return root / "suppression.txt"


def _list(r: Reader, value: object, named: Mapping[str, Any], commercial: bool) -> ListConfig:
    if isinstance(value, str):
        value = {"path": value}
    spec = r.map(
        value,
        ("list",),
        {"path", "columns", "segment", "suppress", "sheet", "dedupe_by", "validate", "max_mb"},
    )
    check = r.choice(spec.get("validate", "syntax"), ("list", "validate"), _VALIDATE)
    dedupe_by = r.choice(spec.get("dedupe_by", "email"), ("list", "dedupe_by"), _DEDUPE)
    if "path" not in spec:
        raise r.doc.error(("list",), "missing key 'path'")
    columns = r.map(spec.get("columns", {}), ("list", "columns"), None)
    mapped = {k: r.text(v, ("list", "columns", k)) for k, v in columns.items()}
    name, filters = _segment(r, spec.get("segment"), named)
    suppress = r.paths(spec["suppress"], ("list", "suppress")) if "suppress" in spec else ()
    project_wide = project_suppression(r.doc.path)
    if project_wide.exists():
        suppress = (*suppress, project_wide)
    # Any limit up to 1 TiB is a deliberate choice; the default guards against accidents.
    max_mb = r.integer(spec.get("max_mb", ListConfig.max_mb), ("list", "max_mb"), 1, 1024**2)
    return ListConfig(
        paths=r.paths(spec["path"], ("list", "path")),
        columns=mapped,
        segment_name=name,
        segment=filters,
        suppress=suppress,
        sheet=r.text(spec["sheet"], ("list", "sheet")) if "sheet" in spec else None,
        dedupe_by=dedupe_by,
        deliverability=check == "deliverability",
        consent_required=commercial,
        max_mb=max_mb,
    )


def _unsubscribe(r: Reader, value: object) -> UnsubscribeConfig:
    spec = r.map(value, ("unsubscribe",), {"url", "mailto", "secret_env"})
    if "url" not in spec:
        raise r.doc.error(
            ("unsubscribe",),
            "missing key 'url': the https address of the unsubscribe server "
            "(harkat-mail unsubscribe-server); every message carries a one-click link",
        )
    try:
        url = https_url(r.text(spec["url"], ("unsubscribe", "url")))
    except ValueError as exc:
        raise r.doc.error(("unsubscribe", "url"), str(exc)) from None
    mailto = spec.get("mailto")
    return UnsubscribeConfig(
        url=url,
        # only the address: it goes into <mailto:...?subject=unsubscribe> and the footer link
        mailto=r.address(mailto, ("unsubscribe", "mailto"), bare=True) if mailto else None,
        secret_env=r.text(
            spec.get("secret_env", DEFAULT_SECRET_ENV), ("unsubscribe", "secret_env")
        ),
    )


def _identification(r: Reader, value: object, purpose: str) -> Identification | None:
    if value is None:
        if purpose == "commercial":
            raise r.doc.error(
                ("identification",),
                "missing: a commercial campaign must name its sender, mailing address and "
                "contact (CASL)",
            )
        return None
    spec = r.map(value, ("identification",), {"name", "mailing_address", "contact"})
    for key in ("name", "mailing_address", "contact"):
        if key not in spec:
            raise r.doc.error(("identification",), f"missing key {key!r}")
    return Identification(
        name=r.per_language(spec["name"], ("identification", "name"), "text"),
        mailing_address=r.text(spec["mailing_address"], ("identification", "mailing_address")),
        contact=r.text(spec["contact"], ("identification", "contact")),
    )


def _dkim(r: Reader, value: object) -> DkimConfig | None:
    if value is None:
        return None
    spec = r.map(value, ("dkim",), {"domain", "selector", "key_path"})
    for key in ("domain", "selector", "key_path"):
        if key not in spec:
            raise r.doc.error(("dkim",), f"missing key {key!r}")
    key_path = r.path(spec["key_path"], ("dkim", "key_path"))
    if not key_path.is_file():
        raise r.doc.error(("dkim", "key_path"), f"no private key file at {key_path}")
    names = {}
    for key, what in (("domain", "domain"), ("selector", "selector")):
        try:
            names[key] = dns_name(r.text(spec[key], ("dkim", key)), what)
        except ValueError as exc:
            raise r.doc.error(("dkim", key), str(exc)) from None
    return DkimConfig(domain=names["domain"], selector=names["selector"], key_path=key_path)


def _purpose(r: Reader, top: Mapping[str, Any]) -> str:
    if "purpose" not in top:
        raise r.doc.missing(("purpose",))
    return r.choice(top["purpose"], ("purpose",), _PURPOSES)


def _list_id(r: Reader, top: Mapping[str, Any], name: str, sender: str) -> str:
    """The List-Id: as written, or ``<name>.<sender domain>``; ASCII either way (RFC 2919)."""
    if "list_id" in top:
        try:
            return check_list_id(r.text(top["list_id"], ("list_id",)))
        except ValueError as exc:
            raise r.doc.error(("list_id",), str(exc)) from None
    default = f"{name}.{parseaddr(sender)[1].rsplit('@', 1)[1]}"
    try:
        return check_list_id(default)
    except ValueError as exc:
        raise r.doc.error(
            ("name",), f"gives no valid default list_id: {exc}; set list_id"
        ) from None


def _lease(r: Reader, value: object) -> float:
    """Seconds a silent run keeps its members: long enough to renew, short enough to recover."""
    seconds = r.number(value, ("lease",))
    if not 1 <= seconds <= 3600:  # also refuses .nan and .inf
        raise r.doc.error(("lease",), f"expected seconds from 1 to 3600, got {value!r}")
    return seconds


def _send_log(r: Reader, value: object) -> Path | str:
    """A SQLite file (relative to the YAML) or a ``postgresql://`` URL (no password in it)."""
    text = r.text(value, ("send_log",))
    try:
        kind = send_log_kind(text)
    except ValueError as why:
        raise r.doc.error(("send_log",), str(why)) from None
    if kind == "file":
        return r.path(text, ("send_log",))
    parts = urlsplit(text)
    if parts.password or "password" in parts.query.lower():
        raise r.doc.error(
            ("send_log",),
            "never put the password in the URL; use PGPASSWORD, ~/.pgpass or PGSERVICEFILE",
        )
    return text


def _timezone(r: Reader, value: object) -> str:
    """An IANA zone name for the times reports show; "" is the machine's own zone."""
    if value is None:
        return ""
    name = r.text(value, ("timezone",))
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        near = suggest(name, available_timezones())
        raise r.doc.error(
            ("timezone",), f"{name!r} is not a time zone name such as America/Toronto{near}"
        ) from None
    return name


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file; raise ``ConfigError`` naming file, line and key."""
    source = Path(path)
    doc = Doc(source, read_document(source))
    r = Reader(doc)
    top = r.map(doc.data, (), _TOP_KEYS)
    for key in ("name", "from", "subject", "template", "list"):
        if key not in top:
            raise doc.missing((key,))
    template = r.path(top["template"], ("template",))
    if not template.is_dir():
        raise doc.error(("template",), f"no template folder at {template}")
    check_language_keys(r, top, template)

    name = r.text(top["name"], ("name",))
    if not _NAME_RE.match(name):
        raise doc.error(("name",), "use letters, digits, '.', '_' or '-' (it names files)")
    language = r.map(top.get("language", {}), ("language",), {"column", "default"})
    default_language = r.text(language.get("default", "en"), ("language", "default")).lower()
    if not LANG_RE.match(default_language):
        raise doc.error(("language", "default"), "expected a two-letter language code")
    senders = r.per_language(top["from"], ("from",), "address")
    subjects = r.per_language(top["subject"], ("subject",), "text")
    for at, mapping in ((("from",), senders), (("subject",), subjects)):
        if "*" in mapping:
            mapping[default_language] = mapping.pop("*")
        elif default_language not in mapping:
            raise doc.error(at, f"needs an entry for the default language {default_language!r}")

    segments = r.map(top.get("segments", {}), ("segments",), None)
    variables = r.map(top.get("vars", {}), ("vars",), None)
    purpose = _purpose(r, top)
    # A string for every language, or a map per language (a language left out falls back).
    reply_to: dict[str, str] = {}
    if "reply_to" in top:
        reply_to = r.per_language(top["reply_to"], ("reply_to",), "address")
    if "*" in reply_to:
        reply_to[default_language] = reply_to.pop("*")
    list_id = _list_id(r, top, name, senders[default_language])
    retry_spec = r.map(
        top.get("retry", {}), ("retry",), {"attempts", "delays", "throttle_attempts", "max_age"}
    )
    delays = retry_spec.get("delays", list(RetryPolicy().delays))
    if not isinstance(delays, list) or not delays:
        raise doc.error(("retry", "delays"), "expected a list of seconds, e.g. [10, 60, 300]")
    retry = RetryPolicy(
        attempts=r.integer(retry_spec.get("attempts", 3), ("retry", "attempts"), 1, 50),
        delays=tuple(r.number(d, ("retry", "delays", str(i))) for i, d in enumerate(delays)),
        throttle_attempts=r.integer(
            retry_spec.get("throttle_attempts", RetryPolicy.throttle_attempts),
            ("retry", "throttle_attempts"),
            1,
            1000,
        ),
        max_age=_duration(r, retry_spec.get("max_age", "24h"), ("retry", "max_age")),
    )
    bilingual = r.choice(top.get("bilingual", "separate"), ("bilingual",), _BILINGUAL)
    base = source.parent
    relays = smtp_relays(r, top.get("smtp"))
    return Campaign(
        source=source.resolve(),
        name=name,
        sender=senders,
        reply_to=reply_to,
        subject=subjects,
        template=template,
        contacts=_list(r, top["list"], segments, purpose == "commercial"),
        language_column=r.text(language.get("column", "language"), ("language", "column")),
        default_language=default_language,
        vars=variables,
        smtp=relays[0],
        send_log=_send_log(r, top["send_log"])
        if "send_log" in top
        else (base / f"{name}.sendlog.sqlite").resolve(),
        outbox=r.path(top["outbox"], ("outbox",))
        if "outbox" in top
        else (base / "outbox" / name).resolve(),
        previews=r.path(top["previews"], ("previews",))
        if "previews" in top
        else (base / "previews" / name).resolve(),
        unsubscribe=_unsubscribe(r, top.get("unsubscribe")),
        list_id=list_id,
        bilingual="combined" if bilingual == "combined" else "separate",
        retry=retry,
        purpose="commercial" if purpose == "commercial" else "informational",
        identification=_identification(r, top.get("identification"), purpose),
        dkim=_dkim(r, top.get("dkim")),
        lease=_lease(r, top.get("lease", 60)),
        timezone=_timezone(r, top.get("timezone")),
        window=schedule.window(r, top.get("window")),
        bounces=bounce_config(r, top.get("bounces")),
        letter=letter_config(r, top.get("letter"), template, variables),
        relays=relays if len(relays) > 1 or isinstance(top.get("smtp"), list) else (),
    )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(r: Reader, value: object, at: tuple[str, ...]) -> float:
    """Seconds, or a number with a unit: ``90s``, ``30m``, ``24h``, ``2d``."""
    if isinstance(value, str) and value.strip()[-1:].lower() in _UNITS:
        text = value.strip()
        try:
            seconds = float(text[:-1]) * _UNITS[text[-1].lower()]
        except ValueError:
            why = f"expected a duration such as 24h or 90m, got {value!r}"
            raise r.doc.error(at, why) from None
    else:
        seconds = r.number(value, at)
    if seconds <= 0:
        raise r.doc.error(at, "expected a duration above zero, such as 24h")
    return seconds
