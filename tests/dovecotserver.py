"""A throwaway Dovecot IMAP server for the tests: generated config, loopback port, Maildir.

Everything lives in a temp dir: the config, a passwd-file with one user, that user's Maildir,
Dovecot's base and state dirs, its log, and a self-signed certificate for 127.0.0.1 that the
tests trust through ``ca_file``. Dovecot runs in the foreground (``-F``) as an unprivileged
user: the current one, or ``nobody`` when the tests run as root (Dovecot refuses to serve
logins as root). Both IMAPS and plain IMAP (STARTTLS) listen on free loopback ports.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import grp
import ipaddress
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password-42"
INSTALL_HINT = "Debian: apt-get install dovecot-imapd; .ci/run installs it"


def missing_reason() -> str | None:
    """Why no Dovecot can be started here, or None when one can."""
    if not os.access(DOVECOT, os.X_OK):
        return f"{DOVECOT} not installed ({INSTALL_HINT})"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner() -> pwd.struct_passwd:
    """Who Dovecot runs as: this user, or ``nobody`` for root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    return pwd.getpwnam("nobody")


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harkat test IMAP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class DovecotServer:
    """One running Dovecot with one user; ``maildir`` is that user's mailbox on disk."""

    def __init__(self, extra: str = "") -> None:
        self.extra = extra  # more configuration lines, e.g. a reduced imap_capability
        self.owner = _owner()
        parent = Path("/tmp") if os.geteuid() == 0 else Path(tempfile.gettempdir())
        self.base = Path(tempfile.mkdtemp(prefix="harkat-dovecot-", dir=parent))
        self.base.chmod(0o755)
        self.home = self.base / "home"
        self.maildir = self.home / "Maildir"
        self.log = self.base / "dovecot.log"
        self.imaps_port = _free_port()
        self.imap_port = _free_port()
        self.ca_file, key = _certificate(self.base)
        for sub in ("run", "state", "home"):
            (self.base / sub).mkdir()
        (self.base / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.owner.pw_uid}:{self.owner.pw_gid}::{self.home}\n"
        )
        self.config = self.base / "dovecot.conf"
        self.config.write_text(self._conf(key))
        for path in [self.base, *self.base.rglob("*")]:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        key.chmod(stat.S_IRUSR)
        self.process: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    def _conf(self, key: Path) -> str:
        user = self.owner.pw_name
        return f"""
base_dir = {self.base}/run
state_dir = {self.base}/state
instance_name = harkat-test-{os.getpid()}
listen = 127.0.0.1
protocols = imap
default_internal_user = {user}
default_internal_group = {grp.getgrgid(self.owner.pw_gid).gr_name}
default_login_user = {user}
first_valid_uid = {self.owner.pw_uid}
last_valid_uid = {self.owner.pw_uid}
first_valid_gid = 0
log_path = {self.log}
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{key}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {self.base}/passwd
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = .
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
{self.extra}
"""

    def start(self) -> DovecotServer:
        """Start Dovecot and wait until both ports answer."""
        owner: dict[str, object] = {}
        if os.geteuid() == 0:
            owner = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "stderr.txt", "wb"),  # noqa: SIM115 - lives with the process
            cwd=self.base,
            **owner,  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.process.returncode}:\n{self.log_tail()}")
            if all(self._answers(port) for port in (self.imap_port, self.imaps_port)):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"dovecot did not listen within 30 s:\n{self.log_tail()}")

    @staticmethod
    def _answers(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of Dovecot's log and stderr, for error messages."""
        text = ""
        for path in (self.base / "stderr.txt", self.log):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def url(self, scheme: str = "imaps", folder: str = "INBOX") -> str:
        """imaps://bounces@127.0.0.1:PORT/INBOX (or imap:// on the STARTTLS port)."""
        port = self.imaps_port if scheme == "imaps" else self.imap_port
        return f"{scheme}://{USER}@127.0.0.1:{port}/{folder}"

    def close(self) -> None:
        """Stop Dovecot and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)
