"""Per-recipient one-click unsubscribe links for the templates and the List-Unsubscribe header."""

from __future__ import annotations

from ..mail.tokens import BadToken, Signer, secret_from_env
from ..models import Campaign


class Unsubscribe:
    """Per-recipient one-click unsubscribe links, signed so they cannot be forged."""

    def __init__(self, campaign: Campaign) -> None:
        config = campaign.unsubscribe
        self.base = config.url
        self.mailto = config.mailto
        # Without the secret (dry runs, the capture relay) links use a local key; a send to a
        # real relay refuses to start without it (the send command checks first).
        self.signer = Signer(secret_from_env(config.secret_env, required=False))
        self.list_id = campaign.list_id
        if self.base is not None:
            self.prefix = f"{self.base}{'&' if '?' in self.base else '?'}t="

    def url(self, contact_key: str, language: str) -> str:
        """The link for one recipient (a mailto: when only an address is configured)."""
        if self.base is None:
            return f"mailto:{self.mailto}" if self.mailto else ""
        return self.prefix + self.signer.token(self.list_id, contact_key, language)

    def works(self, url: str, contact_key: str) -> bool:
        """True when ``url`` is this campaign's link for this recipient and its token verifies."""
        if self.base is None or not url.startswith(self.prefix):
            return False
        try:
            named = self.signer.verify(url[len(self.prefix) :])
        except BadToken:
            return False
        return named.list_id == self.list_id and named.address == contact_key
