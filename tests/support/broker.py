"""A real Mosquitto on a free loopback port, with a password file and the project's ACL."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
HUB_USER = "hub"
BOX_USERS = tuple(f"box-{c}" for c in "abcdefghijkl")

# Mirrors DESIGN.md: a box may write only under its own node id (%u) and read its own ack/cmd.
ACL = """\
user hub
topic readwrite xfv/v1/#

pattern write xfv/v1/edge/%u/status
pattern read xfv/v1/edge/%u/status
pattern write xfv/v1/edge/%u/events
pattern write xfv/v1/edge/%u/telemetry
pattern read xfv/v1/edge/%u/ack
pattern read xfv/v1/edge/%u/cmd
pattern read xfv/v1/hub/+/state
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def password_of(user: str) -> str:
    return f"{user}-secret"


@dataclass
class Mosquitto:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def password_file(self, user: str) -> Path:
        """A file holding ``user``'s broker password (what ``password_file`` points at)."""
        path = self.workdir / "secrets" / user
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password_of(user))
        return path

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.unlink(missing_ok=True)
        for i, user in enumerate((HUB_USER, *BOX_USERS)):
            args = ["mosquitto_passwd", "-b", str(passwd), user, password_of(user)]
            if i == 0:
                args.insert(1, "-c")
            subprocess.run(args, check=True, capture_output=True)
        passwd.chmod(0o600)
        (self.workdir / "acl").write_text(ACL)
        (self.workdir / "acl").chmod(0o600)
        (self.workdir / "data").mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {self.workdir / 'acl'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir / 'data'}/\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 1000\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "user root\n"
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: "
                    + (self.workdir / "mosquitto.log").read_text()[-2000:]
                )
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def require_mosquitto() -> None:
    """Fail (never skip) when Mosquitto is missing: ``make test`` installs it."""
    if not Path(MOSQUITTO).exists() or shutil.which("mosquitto_passwd") is None:
        raise RuntimeError(
            "Mosquitto is not installed; run `make test` (it installs mosquitto and "
            "mosquitto-clients) or apt-get install mosquitto mosquitto-clients"
        )
