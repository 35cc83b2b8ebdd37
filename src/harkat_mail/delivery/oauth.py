"""OAuth 2.0 access tokens for ``auth: xoauth2`` (Microsoft 365, Google Workspace).

The token comes from an environment variable or from the standard output of a command run
once per SMTP session (tokens expire within the hour; a long run reconnects with a fresh
one). The command runs without a shell, with a time limit; what it prints on standard error
and the token itself never reach a message, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os

from ..errors import ConfigError
from ..models import SmtpConfig

TOKEN_COMMAND_TIMEOUT = 60.0  # seconds; a sign-in prompt waiting for a human never ends


def xoauth2_response(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial response, as Google and Microsoft document it."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return base64.b64encode(raw)


def check_token_source(config: SmtpConfig) -> None:
    """Fail early (before any member is touched) when the token cannot be had at all."""
    if not config.username:
        raise ConfigError("smtp.auth: xoauth2 needs username (the mailbox address)")
    if config.token_env and not os.environ.get(config.token_env):
        raise ConfigError(f"smtp.token_env: environment variable {config.token_env} is unset")
    if not config.token_env and not config.token_command:
        raise ConfigError("smtp.auth: xoauth2 needs token_env or token_command")


async def access_token(config: SmtpConfig) -> str:
    """A current access token from ``token_env`` or ``token_command``."""
    if config.token_env:
        token = os.environ.get(config.token_env, "").strip()
        if not token:
            raise ConfigError(f"smtp.token_env: environment variable {config.token_env} is unset")
        return _checked(token, f"environment variable {config.token_env}")
    argv = config.token_command
    name = f"smtp.token_command ({argv[0]})"
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # may hold secrets: never read, never shown
        )
    except OSError as exc:
        raise ConfigError(f"{name}: cannot run it ({exc.strerror or exc})") from None
    try:
        out, _ = await asyncio.wait_for(process.communicate(), TOKEN_COMMAND_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise ConfigError(
            f"{name}: no token after {TOKEN_COMMAND_TIMEOUT:.0f} s; does it wait for a sign-in?"
        ) from None
    if process.returncode != 0:
        raise ConfigError(
            f"{name} exited with status {process.returncode}; run it by hand to see why"
        )
    return _checked(out.decode("utf-8", "replace").strip(), name)


def _checked(token: str, source: str) -> str:
    # Said without quoting the value: a wrong token is still a secret.
    if not token:
        raise ConfigError(f"{source}: printed no access token")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        raise ConfigError(f"{source}: expected one access token, got several words or lines")
    return token
