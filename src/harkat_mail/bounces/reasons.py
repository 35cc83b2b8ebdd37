"""Why a recipient bounced: status code and diagnostic text -> hard, soft or block.

The class decides what happens to the member, so the rules err towards keeping members: only a
reason that says the address itself is dead is hard; anything that says the receiving system
refused *us* (spam filter, blocklist, policy, authentication, content, rate) is a block, even
under a 5.x.x code; everything else that failed is soft and only counted.
"""

from __future__ import annotations

import re
from typing import Literal

BounceClass = Literal["hard", "soft", "block", "complaint"]

# RFC 3463 enhanced status code, and the basic SMTP reply code (RFC 5321) of a server reply.
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
BASIC = re.compile(r"(?<![\d.])([245])\d\d(?=[ \-]|$)")


def _rx(*parts: str) -> re.Pattern[str]:
    """One alternation, matched against lower-cased text. Branches start with a literal, not
    with \b, so the regex engine can skip ahead: the rules run on every diagnostic."""
    return re.compile("|".join(parts))


# The receiving system refused us: never the member's fault.
BLOCK = _rx(
    r"spam",
    r"unsolicited",
    r"junk\b",
    r"bulk mail",
    r"black ?list",
    r"block ?list",
    r"blocked\b",
    r"blocking\b",
    r"(?:is|are|was|been|currently|ip) listed\b",
    r"listed (?:at|on|by|in (?:the )?(?:rbl|dnsbl|spamhaus|sbl|xbl|pbl|cbl|barracuda|sorbs))",
    r"spamhaus|spamcop|barracuda|sorbs|surbl|uribl|proofpoint|mimecast|cloudmark|trend ?micro",
    r"dnsbl|rbl\b|rbls\b",
    r"reputation",
    r"policy\b|policies\b",
    r"spf\b|dkim\b|dmarc\b|sender ?id\b",
    r"authenticat",
    r"not authori[sz]ed",
    r"access denied",
    r"content (?:filter|reject)|rejected (?:due to|because of) (?:its |the )?content",
    r"message content",
    r"virus(?:es)? (?:found|detected)|infected|malware|phish|banned",
    r"suspicious|fraud",
    r"rate limit|ratelimit|too many (?:messages|connections|recipients|emails|mails)",
    r"throttl|rate of\b|sending rate",
    r"complaints?\b",
    r"tss\d\d\b|bl\d\d\b|rl\d\d\b",
    r"reverse dns|ptr record|rdns\b|helo command rejected|invalid helo|bad helo",
    r"tls required|requires? (?:tls|encryption)|must use tls",
    r"message (?:size|length|too (?:big|large))|too (?:big|large)",
    r"exceeds (?:the )?(?:maximum|size)",
    r"sender (?:address )?rejected|sender domain|sender verify|domain of sender",
    r"refused to accept|not accepting mail from",
    r"'?send mail as'? (?:feature|account)|does not advertise auth",
    r"without (?:an? )?[\w-]+:? (?:field|header)",
    r"(?:missing|no|invalid|bad) [\w-]+:? (?:field|header)",
    r"header error|malformed (?:message|header)",
    r"not allowed\b|prohibited\b|forbidden\b|disallowed\b",
)

# The address itself is dead: the only reasons that suppress at once.
HARD = _rx(
    r"user ?unknown|unknown ?user|unknown (?:local[- ]?part|recipient|mailbox|address|account)",
    r"recipient unknown|address unknown|addressee unknown|mailbox unknown",
    r"no such (?:user|mailbox|recipient|account|address|person|local user|domain|host)",
    r"does not exist|doesn't exist|not exist|did not exist|nonexistent|non-existent",
    r"not known|no matches to nameserver query|final (?:e-?mail )?delivery point",
    r"invalid final delivery userid|did not (?:exactly )?match an? .{0,20}address",
    r"n'existe pas|inconnu|introuvable|unbekannt|existiert nicht|no existe|inexistente|non esiste",
    r"(?:user|mailbox|recipient|account|address) (?:was |is )?not found",
    r"(?:invalid|bad|unknown|illegal|unrouteable|unroutable) "
    r"(?:recipient|mailbox|address|user|destination)",
    r"unrouteable|unroutable",
    r"not a valid (?:mailbox|user|recipient|address)",
    r"no mailbox|mailbox (?:not found|unavailable|is unavailable|disabled|is disabled)",
    r"(?:account|mailbox|address|user)(?: [^ ]+){0,3} (?:has been |is |was )?"
    r"(?:disabled|deactivated|deleted|closed|terminated|discontinued|expired|suspended|removed|"
    r"inactive|locked)",
    r"(?:is|been) (?:disabled|deactivated|discontinued|inactive)",
    r"no longer (?:active|valid|available|in use|exists|accepting|receiving|with)",
    r"(?:host|domain)(?: name)? not found|no such domain|domain (?:does not|doesn't) exist",
    r"name or service not known|nxdomain|host unknown|unknown host",
    r"domain unknown|unknown domain",
    r"no (?:valid )?mx|null mx|no mail ?exchanger|does not accept (?:any )?mail|accepts no mail",
    r"doesn't have a [^ ]+ account|does not have an account|not our customer",
    r"recipnotfound|recipientnotfound|resolver\.adr",
    r"not listed in (?:domino|the public|public|address|directory)",
    r"mailbox has moved|moved permanently|has moved|not deliverable to this address",
    r"bad destination|invalid address|address rejected: (?:undeliverable|user)",
    r"no account by that name|account not available",
)

# A passing problem: counted, never suppressed at once.
SOFT = _rx(
    r"full\b|quota|storage|insufficient",
    r"exceed(?:ed|s) (?:its |the )?(?:size|limit|capacity|space)",
    r"temporar|try (?:again )?later|deferr|delay|greylist|graylist|timed? ?out|time-out",
    r"expired|too long|retry|queue",
)

# Block words inside a hard reason ("not listed in the directory", "blocked: no such user").
HARD_OVER_BLOCK = _rx(
    r"not listed in (?:domino|the public|public|address|directory)",
    r"user ?unknown|unknown ?user|no such (?:user|mailbox|recipient)|nonexistent user",
)
# The domain says it takes no mail at all (RFC 7505 null MX).
NEVER = _rx(r"null mx|(?:does not|doesn't) (?:receive|accept) (?:any )?e?mail(?! from)")
# The mailbox exists but cannot take more now, or the failure says to try again.
EXISTS = _rx(
    r"mailbox (?:is )?full|full mailbox|mail ?folder is full|over ?quota|quota|disk ?space",
    r"storage space|insufficient (?:system )?storage|not enough space|space not enough",
    r"try again|temporar",
)

# Enhanced status subjects and details (RFC 3463) that settle the class when the text does not:
# bad mailbox or destination, syntax, moved, null MX, disabled mailbox, unroutable.
HARD_CODES = frozenset({"1.1", "1.2", "1.3", "1.6", "1.10", "2.1", "4.4"})


def status_in(text: str) -> str:
    """The first enhanced status code in a server reply, or ""."""
    found = ENHANCED.search(text)
    return ".".join(found.groups()) if found else ""


def reply_code(text: str) -> str:
    """The first basic SMTP reply code (e.g. "550") in a server reply, or ""."""
    found = BASIC.search(text)
    return found.group(0) if found else ""


def best_status(status: str, diagnostic: str) -> str:
    """The DSN's status, or the more precise one in the diagnostic when the DSN's is X.0.0."""
    if status and not ENHANCED.fullmatch(status):
        status = status_in(status)
    quoted = status_in(diagnostic)
    if not status or (status.endswith(".0.0") and quoted and not quoted.endswith(".0.0")):
        return quoted or status
    return status


def bounce_class(status: str, diagnostic: str, *, delayed: bool = False) -> BounceClass:
    """Hard, soft or block for one recipient, from its status code and the server's words."""
    text = (diagnostic or "").lower()
    if BLOCK.search(text) and not HARD_OVER_BLOCK.search(text):
        return "block"
    if NEVER.search(text):
        return "hard"  # a null MX is final even under a 4.x.x code
    code = status or status_in(text)
    basic = reply_code(text)
    if delayed or code.startswith("4") or (not code and basic.startswith("4")):
        return "soft"
    if EXISTS.search(text):
        return "soft"  # full or over quota: the mailbox is there
    if HARD.search(text):
        return "hard"
    if SOFT.search(text):
        return "soft"
    subject = code.split(".", 1)[1] if code.count(".") == 2 else ""
    if subject.startswith(("7.", "6.")):
        return "block"
    return "hard" if subject in HARD_CODES else "soft"
