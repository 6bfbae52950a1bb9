"""Deployment test helpers: a test PKI, ``ansible-playbook`` runs, the ``broker`` role applied
into a directory, the Mosquitto that role configured, and TLS MQTT clients.

Typical use (``tests/deploy/test_ansible.py``; an end-to-end test can do the same)::

    pki = make_pki(tmp / "pki")
    site = DeploySite(tmp / "site", pki, hub_password="...", box_passwords={"box-a": "..."})
    site.apply("site.yml", limit="brokers")        # the real playbook, paths under tmp
    broker = RoleMosquitto(site.broker).start()    # /usr/sbin/mosquitto -c <role's config>
    with MqttProbe.connected(broker.host, broker.tls_port, ca_file=pki.ca_cert,
                             username="box-a", password="...") as box:
        box.publish("xfv/v1/edge/box-a/events", b"{}")
    broker.stop()

Everything listens on 127.0.0.1 only. Nothing here needs root: owners are the current user.
A missing tool raises ``ToolMissing`` naming what to install; nothing is skipped.
"""

from __future__ import annotations

import datetime as dt
import getpass
import grp
import ipaddress
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.broker import MOSQUITTO, free_port, require_mosquitto

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory" / "example"
HOST = "127.0.0.1"
CITY = "5101"

# The tools the deployment tests run, and what provides them (versions known to work here).
PIP_TOOLS = {
    "ansible-playbook": "ansible-core==2.19.14",
    "ansible-vault": "ansible-core==2.19.14",
    "ansible-inventory": "ansible-core==2.19.14",
    "ansible-lint": "ansible-lint==26.10.1",
    "yamllint": "yamllint==1.38.0",
}
SYSTEM_TOOLS = {
    "mosquitto_passwd": "mosquitto",
    "openssl": "openssl",
    "systemd-analyze": "systemd",
}


class ToolMissing(RuntimeError):
    """A program the deployment tests need is not installed."""


class PlaybookFailed(RuntimeError):
    """``ansible-playbook`` exited non-zero."""


def tool(name: str) -> str:
    """The path of ``name``: beside this interpreter (the venv) first, then on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    if name in PIP_TOOLS:
        hint = f"{Path(sys.executable).parent / 'pip'} install '{PIP_TOOLS[name]}'"
    elif name in SYSTEM_TOOLS:
        hint = f"apt-get install {SYSTEM_TOOLS[name]}"
    else:
        hint = f"install {name}"
    raise ToolMissing(f"{name} is not installed; the deployment tests need it: {hint}")


def require_tools(*names: str) -> None:
    """Fail (never skip) when a tool is missing, naming what to install."""
    for name in names:
        tool(name)


# --- PKI ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA and a server certificate for ``localhost`` and ``127.0.0.1``, PEM files."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_pki(directory: Path, names: Sequence[str] = ("localhost", HOST)) -> Pki:
    """Create a fresh CA and a server certificate whose SANs are ``names`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xfv test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    for path, key in ((pki.ca_key, ca_key), (pki.server_key, server_key)):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    return pki


# --- Ansible --------------------------------------------------------------------------------


def ansible_env(workdir: Path) -> dict[str, str]:
    """The environment of every Ansible run: the repo's ansible.cfg, temp dirs in ``workdir``,
    a UTF-8 locale (ansible-core requires one), no colour."""
    env = dict(os.environ)
    home = workdir / "ansible-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    return env


def run_ansible(
    args: Sequence[str | Path],
    workdir: Path,
    *,
    cwd: Path = ANSIBLE_DIR,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command (first item: the tool's name); raise ``PlaybookFailed`` with its
    output when ``check`` and it fails."""
    argv = [tool(str(args[0])), *(str(a) for a in args[1:])]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=ansible_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise PlaybookFailed(
            f"{' '.join(argv)} exited with {proc.returncode}:\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """``{host: {"ok": n, "changed": n, "failed": n, ...}}`` from ``PLAY RECAP``."""
    recap: dict[str, dict[str, int]] = {}
    lines = output.split("PLAY RECAP", 1)[-1].splitlines()[1:]
    for line in lines:
        host, sep, counts = line.partition(":")
        if not sep or "=" not in counts:
            continue
        recap[host.strip()] = {
            key: int(value) for key, value in (item.split("=") for item in counts.split())
        }
    return recap


def vault_encrypt(path: Path, vault_password_file: Path, workdir: Path) -> None:
    """Encrypt ``path`` in place with ``ansible-vault``."""
    run_ansible(
        ["ansible-vault", "encrypt", "--vault-password-file", vault_password_file, path],
        workdir,
    )
    if not path.read_text().startswith("$ANSIBLE_VAULT;"):
        raise AssertionError(f"ansible-vault did not encrypt {path}")


# --- A site: the example inventory's group_vars, test hosts, paths under one directory -------


def current_owner() -> tuple[str, str]:
    """The user and primary group the role should use for files (no root needed)."""
    return getpass.getuser(), grp.getgrgid(os.getgid()).gr_name


@dataclass(frozen=True)
class BrokerInstall:
    """Where the ``broker`` role put a non-system install, and its listeners."""

    root: Path
    config_file: Path
    password_file: Path
    acl_file: Path
    data_dir: Path
    log_file: Path
    pid_file: Path
    tls_dir: Path
    tls_port: int
    local_port: int
    ca_file: Path
    host: str = HOST


def broker_role_vars(root: Path, tls_port: int, local_port: int) -> dict[str, Any]:
    """The ``broker`` role's variables for a non-system install in ``root`` run by the current
    user, listening on ``127.0.0.1`` only, Mosquitto started by the caller."""
    user, group = current_owner()
    return {
        "broker_install_packages": False,
        "broker_manage_service": False,
        "broker_user": user,
        "broker_group": group,
        "broker_file_owner": user,
        "broker_config_dir": str(root / "etc"),
        "broker_data_dir": str(root / "data"),
        "broker_log_dir": str(root / "log"),
        "broker_pid_file": str(root / "run" / "mosquitto.pid"),
        "broker_tls_bind_address": HOST,
        "broker_tls_port": tls_port,
        "broker_local_port": local_port,
        "broker_passwd_command": tool("mosquitto_passwd"),
        "broker_verify_host": HOST,
    }


def broker_install(root: Path, tls_port: int, local_port: int) -> BrokerInstall:
    etc = root / "etc"
    return BrokerInstall(
        root=root,
        config_file=etc / "mosquitto.conf",
        password_file=etc / "passwd",
        acl_file=etc / "acl",
        data_dir=root / "data",
        log_file=root / "log" / "mosquitto.log",
        pid_file=root / "run" / "mosquitto.pid",
        tls_dir=etc / "certs",
        tls_port=tls_port,
        local_port=local_port,
        ca_file=etc / "certs" / "ca.pem",
    )


@dataclass(frozen=True)
class BoxHost:
    """A township box of the test inventory, run locally with its paths under ``root``."""

    name: str
    township: str
    box_no: int
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "etc" / "xfv"

    @property
    def credential(self) -> Path:
        return self.config_dir / "credentials" / "mqtt-password"


@dataclass
class DeploySite:
    """A test inventory in ``root``: the example inventory's ``group_vars`` (so the mapping from
    vault variables to role variables is the real one), a host ``broker-5101`` in ``brokers``,
    ``hub-5101`` in ``hubs`` and boxes in ``boxes``, every host reached with a local connection
    and every role path under ``root/hosts/<host>``. The vault files are encrypted with a
    generated vault password."""

    root: Path
    pki: Pki
    hub_password: str
    box_passwords: Mapping[str, str]
    boxes: Sequence[tuple[str, str, int]] = (
        ("box-a", "510104021", 1),
        ("box-b", "510104022", 1),
    )
    tls_port: int = field(default_factory=free_port)
    local_port: int = field(default_factory=free_port)
    hub_http_port: int = field(default_factory=free_port)
    signaling_port: int = field(default_factory=free_port)
    token_key: str = field(default_factory=lambda: os.urandom(32).hex())
    broker_host_name: str = "broker-5101"
    hub_host_name: str = "hub-5101"

    def __post_init__(self) -> None:
        require_mosquitto()
        self.inventory_dir = self.root / "inventory"
        self.vault_password_file = self.root / "vault-password"
        self.bundle_dir = self.root / "bundles"
        self.hub_root = self.root / "hosts" / self.hub_host_name
        self.broker = broker_install(
            self.root / "hosts" / self.broker_host_name, self.tls_port, self.local_port
        )
        self.box_hosts = {
            name: BoxHost(name, township, box_no, self.root / "hosts" / name)
            for name, township, box_no in self.boxes
        }
        self._write_inventory()

    def _write_inventory(self) -> None:
        inv = self.inventory_dir
        shutil.rmtree(inv, ignore_errors=True)
        for group in ("all", "brokers", "hubs", "boxes"):
            (inv / "group_vars" / group).mkdir(parents=True)
            shutil.copyfile(
                EXAMPLE_INVENTORY / "group_vars" / group / "main.yml",
                inv / "group_vars" / group / "main.yml",
            )
        (inv / "host_vars").mkdir()
        (inv / "files").mkdir()
        shutil.copyfile(self.pki.ca_cert, inv / "files" / "ca.pem")
        shutil.copyfile(self.pki.server_cert, inv / "files" / f"{self.broker_host_name}.pem")
        self.vault_password_file.write_text("test-vault-" + os.urandom(16).hex() + "\n")
        self.vault_password_file.chmod(0o600)
        self.bundle_dir.mkdir(parents=True, exist_ok=True)

        local = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_become": False,
        }
        hosts: dict[str, Any] = {
            "all": {
                "children": {
                    "city_5101": {
                        "hosts": {self.broker_host_name: None, self.hub_host_name: None},
                        "children": {
                            "county_510104": {
                                "hosts": {
                                    b.name: {"township": b.township, "box_no": b.box_no}
                                    for b in self.box_hosts.values()
                                }
                            }
                        },
                    },
                    "brokers": {"hosts": {self.broker_host_name: None}},
                    "hubs": {"hosts": {self.hub_host_name: None}},
                    "boxes": {"children": {"county_510104": None}},
                }
            }
        }
        (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
        (inv / "group_vars" / "city_5101.yml").write_text(
            yaml.safe_dump(
                {
                    "xfv_city": CITY,
                    "xfv_broker_host": HOST,
                    "xfv_broker_port": self.tls_port,
                    "xfv_signaling_url": self.signaling_url,
                }
            )
        )
        self._vault(
            inv / "group_vars" / "all" / "vault.yml",
            {
                "vault_broker_hub_password": self.hub_password,
                "vault_box_passwords": dict(self.box_passwords),
            },
        )
        self._vault(
            inv / "group_vars" / "hubs" / "vault.yml", {"vault_hub_token_key": self.token_key}
        )
        self._vault(
            inv / "group_vars" / "brokers" / "vault.yml",
            {"vault_broker_tls_key": self.pki.server_key.read_text()},
        )
        common = {**local, "xfv_package": ""}
        broker_vars = {
            **common,
            **broker_role_vars(self.broker.root, self.tls_port, self.local_port),
        }
        (inv / "host_vars" / f"{self.broker_host_name}.yml").write_text(
            yaml.safe_dump(broker_vars, sort_keys=False)
        )
        hub_vars = {
            **common,
            **self.hub_role_vars(self.hub_root),
            "hub_http_port": self.hub_http_port,
            "hub_mqtt_port": self.local_port,  # the broker role's loopback listener
            "hub_signaling_http_port": self.signaling_port,
        }
        (inv / "host_vars" / f"{self.hub_host_name}.yml").write_text(
            yaml.safe_dump(hub_vars, sort_keys=False)
        )
        for box in self.box_hosts.values():
            (inv / "host_vars" / f"{box.name}.yml").write_text(
                yaml.safe_dump({**common, **self.edge_role_vars(box.root)}, sort_keys=False)
            )

    @property
    def signaling_url(self) -> str:
        """Live reception's WebSocket as boxes and browsers reach it (no proxy in the tests)."""
        return f"ws://{HOST}:{self.signaling_port}/ws"

    def _vault(self, path: Path, data: Mapping[str, Any]) -> None:
        path.write_text(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))
        path.chmod(0o600)
        vault_encrypt(path, self.vault_password_file, self.root)

    @staticmethod
    def hub_role_vars(root: Path) -> dict[str, Any]:
        """The ``hub`` role's variables for a files-only install in ``root``."""
        user, group = current_owner()
        venv = root / "venv"
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        link = venv / "bin" / "xfv"
        if not link.exists():
            link.symlink_to(tool("xfv"))
        return {
            "hub_install_packages": False,
            "hub_install_package": False,
            "hub_manage_user": False,
            "hub_manage_service": False,
            "hub_user": user,
            "hub_group": group,
            "hub_file_owner": user,
            "hub_venv_dir": str(venv),
            "hub_config_dir": str(root / "etc"),
            "hub_state_dir": str(root / "state"),
            "hub_backup_dir": str(root / "backups"),
            "hub_systemd_dir": str(root / "systemd"),
            "hub_discovery_interfaces": [HOST],
        }

    @staticmethod
    def edge_role_vars(root: Path) -> dict[str, Any]:
        """The ``edge`` role's variables for a files-only install below ``root`` (``edge_root``:
        the paths the image's unit names, under ``root``)."""
        user, group = current_owner()
        venv = root / "opt" / "xfv" / "venv"
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        link = venv / "bin" / "xfv"
        if not link.exists():
            link.symlink_to(tool("xfv"))
        return {
            "edge_install_packages": False,
            "edge_install_package": False,
            "edge_manage_user": False,
            "edge_manage_service": False,
            "edge_manage_udev": True,
            "edge_user": user,
            "edge_group": group,
            "edge_file_owner": user,
            "edge_camera_group": group,
            "edge_root": str(root),
            "edge_camera": "synthetic",
            "edge_kiosk_port": free_port(),
            "edge_discovery_interfaces": [HOST],
        }

    def playbook(
        self,
        playbook: str | Path,
        *extra: str,
        limit: str | None = None,
        extra_vars: Mapping[str, Any] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of ``ansible/``'s playbooks (or another path) on this site's inventory."""
        args: list[str | Path] = [
            "ansible-playbook",
            "-i",
            self.inventory_dir / "hosts.yml",
            "--vault-password-file",
            self.vault_password_file,
        ]
        if limit:
            args += ["--limit", limit]
        # The control node's settings apply to the implicit localhost too: extra vars.
        control = {"xfv_control_command": tool("xfv"), "xfv_bundle_dir": str(self.bundle_dir)}
        args += ["-e", json.dumps({**control, **(extra_vars or {})})]
        args += [*extra, ANSIBLE_DIR / playbook]
        return run_ansible(args, self.root, check=check)

    def apply(self, playbook: str = "site.yml", **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.playbook(playbook, **kwargs)


# --- Mosquitto as the role configured it ------------------------------------------------------


@dataclass
class RoleMosquitto:
    """``/usr/sbin/mosquitto -c <config the broker role wrote>``, started and stopped here."""

    install: BrokerInstall
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self.install.host

    @property
    def tls_port(self) -> int:
        return self.install.tls_port

    @property
    def local_port(self) -> int:
        return self.install.local_port

    def log(self) -> str:
        path = self.install.root / "stderr.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if self.install.log_file.exists():
            text += self.install.log_file.read_text(errors="replace")
        return text

    def start(self, timeout: float = 10) -> RoleMosquitto:
        require_mosquitto()
        stderr = (self.install.root / "stderr.log").open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.install.config_file)], stdout=stderr, stderr=stderr
        )
        stderr.close()
        deadline = time.monotonic() + timeout
        waiting = [self.tls_port, self.local_port]
        while waiting:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {self.host}:{waiting}")
            try:
                socket.create_connection((self.host, waiting[0]), 0.2).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        return self

    def reload(self, timeout: float = 5) -> None:
        """SIGHUP (what the service's reload does) and wait until Mosquitto has re-read its
        password file and ACL: it logs "Reloading config" first, in the thread that then
        serves new connections."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        before = self.log().count("Reloading config")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.log().count("Reloading config") <= before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not reload: {self.log()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5)
        self.proc = None


# --- systemd-analyze verify on a unit that names the real paths --------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``{"Section.Key": [values...]}`` of a unit file, continuation lines joined."""
    settings: dict[str, list[str]] = {}
    section = ""
    logical: list[str] = []
    for raw in path.read_text("utf-8").splitlines():
        if raw.endswith("\\"):
            logical.append(raw[:-1].strip())
            continue
        line = " ".join([*logical, raw.strip()]).strip()
        logical = []
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def unit_programs(path: Path) -> list[str]:
    """The absolute paths of the programs a unit's ``Exec*=`` lines run."""
    return [
        value.lstrip("-@:+!").split()[0]
        for key, values in unit_settings(path).items()
        if key.startswith("Service.Exec")
        for value in values
    ]


def make_unit_root(root: Path, units: Sequence[Path]) -> Path:
    """A file system root for ``systemd-analyze --root``: this machine's own system units (so
    sysinit.target and friends resolve), ``units`` in /etc/systemd/system, and every program
    their Exec lines name. Those programs come from the box's packages and its set-up (the
    venv, xfv-box); here they are executable stand-ins, because verify only checks that each
    is an executable file in the root."""
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, target / unit.name)
        for name in unit_programs(unit):
            program = root / name.lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\nexit 0\n")
            program.chmod(0o755)
    return root


def verify_units(root: Path, *units: str) -> str:
    """``systemd-analyze verify --root=root`` of units in its /etc/systemd/system: the output,
    with `` [rc]`` added when it failed. It exits 0 on unknown keys and bad values and only
    prints them, so any output at all is a failure."""
    result = subprocess.run(
        [
            tool("systemd-analyze"),
            "verify",
            f"--root={root}",
            "--man=no",
            *(f"/etc/systemd/system/{u}" for u in units),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else " [rc]")


# --- Programs run on what the roles wrote ---------------------------------------------------


def start_with_credentials(
    args: Sequence[str], credentials_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """``xfv <args>`` with ``$CREDENTIALS_DIRECTORY`` set, as systemd's ``LoadCredential=``
    would hand the role's credential files to the service."""
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(credentials_dir))
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [tool("xfv"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- MQTT clients ---------------------------------------------------------------------------


class ConnectRefused(Exception):
    """The broker did not accept the connection (no CONNACK, or a failure reason code)."""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class MqttProbe:
    """A paho MQTT v5 client on its own network thread, for checking what a broker allows.

    Messages land in a queue; every call waits for the broker's answer (CONNACK, SUBACK,
    PUBACK) and returns its reason code."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.messages: queue.Queue[Received] = queue.Queue()
        self._lock = threading.Lock()
        self._connack: queue.Queue[ReasonCode | None] = queue.Queue()
        self._acks: dict[int, queue.Queue[list[ReasonCode]]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{os.urandom(4).hex()}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    @classmethod
    @contextmanager
    def connected(cls, host: str, port: int, **kwargs: Any) -> Iterator[MqttProbe]:
        probe = cls(host, port, **kwargs)
        try:
            probe.connect()
            yield probe
        finally:
            probe.close()

    # paho's thread
    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self._connack.put(rc)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, _rc: ReasonCode, _p: object
    ) -> None:
        self._connack.put(None)

    def _waiter(self, mid: int) -> queue.Queue[list[ReasonCode]]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self._waiter(mid).put(list(codes))

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties | None
    ) -> None:
        self._waiter(mid).put([rc])

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    # caller's thread
    def connect(self, timeout: float = 10) -> ReasonCode:
        """Connect; raise ``ConnectRefused`` unless the broker accepts."""
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:  # TLS handshake or TCP failure
            raise ConnectRefused(f"connect to {self.host}:{self.port} failed: {exc}") from exc
        self.client.loop_start()
        try:
            rc = self._connack.get(timeout=timeout)
        except queue.Empty:
            raise ConnectRefused(f"no CONNACK from {self.host}:{self.port}") from None
        if rc is None:
            raise ConnectRefused(f"{self.host}:{self.port} closed the connection")
        if rc.is_failure:
            raise ConnectRefused(f"{self.host}:{self.port} refused: {rc}")
        return rc

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5) -> ReasonCode:
        result, mid = self.client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise RuntimeError(f"subscribe to {topic!r} not sent: {result}")
        return self._waiter(mid).get(timeout=timeout)[0]

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5
    ) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code (v5: "Not authorized" when
        the ACL refuses, which Mosquitto still acknowledges)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return self._waiter(info.mid).get(timeout=timeout)[0]

    def drain(self, until_topic: str, timeout: float = 5) -> list[Received]:
        """Every message received up to and including the first on ``until_topic``; raises
        ``TimeoutError`` if none comes. Messages from one publisher arrive in order, so a
        marker published last proves that nothing published before it is still on its way."""
        got: list[Received] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message on {until_topic!r}; got {[m.topic for m in got]}")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            got.append(msg)
            if msg.topic == until_topic:
                return got

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def connect_refused(host: str, port: int, **kwargs: Any) -> str | None:
    """The reason a connection is refused, or ``None`` when the broker accepts it."""
    probe = MqttProbe(host, port, **kwargs)
    try:
        probe.connect()
    except ConnectRefused as exc:
        return str(exc)
    finally:
        probe.close()
    return None
