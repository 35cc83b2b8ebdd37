"""Messages: headers, fast MIME, unsubscribe tokens, DKIM."""

from .dkimsign import DkimSigner, generate_key
from .message import message_id
from .mime import VariantMessages
from .tokens import BadToken, Signer, secret_from_env, secret_is_set

__all__ = [
    "BadToken",
    "DkimSigner",
    "Signer",
    "VariantMessages",
    "generate_key",
    "message_id",
    "secret_from_env",
    "secret_is_set",
]
