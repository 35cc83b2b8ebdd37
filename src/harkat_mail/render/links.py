"""Per-recipient one-click unsubscribe links for the templates and the List-Unsubscribe header."""

from __future__ import annotations

from ..errors import ConfigError
from ..mail.tokens import BadToken, Signer, secret_from_env, secret_is_set
from ..models import Campaign


class Unsubscribe:
    """Per-recipient one-click unsubscribe links, signed so they cannot be forged."""

    def __init__(self, campaign: Campaign) -> None:
        config = campaign.unsubscribe
        self.secret_env = config.secret_env
        # Without the secret (dry runs, the capture relay) links use a local key that no
        # unsubscribe server accepts; ``require_secret`` keeps such links off real relays.
        self.local_key = not secret_is_set(config.secret_env)
        self.signer = Signer(secret_from_env(config.secret_env, required=False))
        self.list_id = campaign.list_id
        self.prefix = f"{config.url}{'&' if '?' in config.url else '?'}t="

    def require_secret(self, relay: str) -> None:
        """Refuse to deliver links signed with the local key to anything but the capture relay."""
        if self.local_key:
            raise ConfigError(
                f"unsubscribe.secret_env: environment variable {self.secret_env} is not set; "
                f"messages for {relay} need links the unsubscribe server accepts"
            )

    def url(self, contact_key: str, language: str) -> str:
        """The link for one recipient."""
        return self.prefix + self.signer.token(self.list_id, contact_key, language)

    def test_url(self, tester: str, language: str) -> str:
        """The link in a test message: names the tester; the endpoint records nothing for it."""
        return self.prefix + self.signer.test_token(self.list_id, tester, language)

    def works(self, url: str, contact_key: str) -> bool:
        """True when ``url`` is this campaign's link for this recipient and its token verifies."""
        if not url.startswith(self.prefix):
            return False
        try:
            named = self.signer.verify(url[len(self.prefix) :])
        except BadToken:
            return False
        return named.list_id == self.list_id and named.address == contact_key
