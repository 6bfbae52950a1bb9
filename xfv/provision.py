"""``xfv hub provision-box``: one box's broker credentials and the config bundle its SD card
carries. It lives here, not in ``hub/``, because it builds the box's configuration too (and
the hub never imports the edge); ``xfv.cli`` adds it to the ``xfv hub`` group.

``provision_box`` writes a directory the IT office copies to the box's boot partition
(``/boot/firmware/xfv/``; ``firmware_config/user-data`` installs it on first boot):

- ``edge.toml``: the box's configuration, checked against ``EdgeConfig`` before it is written;
- ``mqtt-password``: the box's broker password (mode 0600), which systemd hands to the edge
  with ``LoadCredential=`` (``password_file = "mqtt-password"``);
- ``ca.pem``: the CA that signed the broker's certificate, when one is given;
- ``broker-passwd``: the box's line for Mosquitto's ``password_file`` (PBKDF2-SHA512, the
  ``$7$`` format ``mosquitto_passwd`` writes), for the broker, not the box.

Nothing else about the box goes to the broker: its ACL is the same ``%u`` patterns for every
box, so the username is all that ties the box to its own topics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from contracts.errors import ContractError
from contracts.topics import check_id
from edge.config import EdgeConfig
from runtime.config import load_config, read_secret
from runtime.errors import ConfigError
from runtime.files import write_durably

PBKDF2_ITERATIONS = 101
"""What mosquitto_passwd 2.0 uses (it stores the count, so a broker reads any)."""
SALT_BYTES = 12
PASSWORD_BYTES = 24
SECRET_FILE = "mqtt-password"
PRIVATE = (SECRET_FILE, "broker-passwd")


class ProvisionError(Exception):
    """A box cannot be provisioned with the values given."""


@dataclass(frozen=True)
class BoxSpec:
    node: str
    township: str
    box_no: int
    broker_host: str
    broker_port: int = 8883
    ca_file: Path | None = None
    hub_id: str | None = None
    state_dir: str = "/var/lib/xfv"
    camera: str = "/dev/xfv-camera"


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """``$7$...``: a password as Mosquitto 2's ``password_file`` stores it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encoded = (base64.b64encode(b).decode() for b in (salt, digest))
    return f"$7${PBKDF2_ITERATIONS}$" + "$".join(encoded)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def edge_toml(spec: BoxSpec) -> str:
    """The box's ``/etc/xfv/edge.toml``."""
    top: dict[str, object] = {
        "node_id": spec.node,
        "township": spec.township,
        "box_no": spec.box_no,
        "state_dir": spec.state_dir,
        "camera": spec.camera,
    }
    if spec.hub_id:
        top["hub_id"] = spec.hub_id
    mqtt: dict[str, object] = {
        "host": spec.broker_host,
        "port": spec.broker_port,
        "username": spec.node,
        "password_file": SECRET_FILE,
        "tls": True,
    }
    if spec.ca_file is not None:
        mqtt["ca_file"] = "/etc/xfv/ca.pem"
    lines = [f"# xfv box {spec.node}: written by `xfv hub provision-box`", ""]
    lines += [f"{k} = {_toml(v)}" for k, v in top.items()]
    lines += ["", "[mqtt]"] + [f"{k} = {_toml(v)}" for k, v in mqtt.items()]
    return "\n".join(lines) + "\n"


def provision_box(spec: BoxSpec, out: Path, password: str | None = None) -> dict[str, object]:
    """Write ``spec``'s bundle into ``out`` (created, mode 0700); a new random password unless
    ``password`` is given. Returns what was written. Files already in ``out`` are replaced."""
    try:
        check_id(spec.node, "node id")
    except ContractError as exc:
        raise ProvisionError(str(exc)) from None
    if spec.ca_file is not None and not spec.ca_file.is_file():
        raise ProvisionError(f"CA file {str(spec.ca_file)!r} does not exist")
    password = password or secrets.token_urlsafe(PASSWORD_BYTES)
    if any(c.isspace() for c in password) or ":" in password:
        raise ProvisionError("the broker password must not contain whitespace or ':'")
    config = edge_toml(spec)
    _check(config)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    files = {"edge.toml": config, SECRET_FILE: password + "\n"}
    files["broker-passwd"] = f"{spec.node}:{mosquitto_hash(password)}\n"
    for name, text in files.items():
        write_durably(out / name, text.encode(), 0o600 if name in PRIVATE else 0o644)
    if spec.ca_file is not None:
        shutil.copyfile(spec.ca_file, out / "ca.pem")
        (out / "ca.pem").chmod(0o644)
        files["ca.pem"] = ""
    return {"node": spec.node, "dir": str(out), "files": sorted(files), "broker_user": spec.node}


def _check(config: str) -> None:
    """Load ``config`` as the box will, so a bundle that would not start is never written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edge.toml"
        path.write_text(config, "utf-8")
        try:
            load_config(path, EdgeConfig)
        except ConfigError as exc:
            raise ProvisionError("; ".join(exc.problems)) from None


@click.command("provision-box")
@click.option("--node", required=True, help="the box's node id, also its broker username")
@click.option("--township", required=True, help="the township's division code (9 or 12 digits)")
@click.option("--box-no", required=True, type=click.IntRange(1, 99), help="its number there")
@click.option("--broker-host", required=True, help="the broker as the box reaches it")
@click.option("--broker-port", default=8883, show_default=True, type=click.IntRange(1, 65535))
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option("--hub-id", default=None, help="make the box wait for this hub only")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="keep the password in this file (re-provisioning); default: a new random one",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def provision_box_command(
    node: str,
    township: str,
    box_no: int,
    broker_host: str,
    broker_port: int,
    ca_file: str | None,
    hub_id: str | None,
    password_file: str | None,
    out_dir: str,
) -> None:
    """Write one box's credentials and config bundle into OUT (the SD card's xfv/ folder),
    with its line for the broker's password file; print a JSON summary."""
    spec = BoxSpec(
        node, township, box_no, broker_host, broker_port, Path(ca_file) if ca_file else None, hub_id
    )
    password = read_secret(password_file) if password_file else None
    try:
        summary = provision_box(spec, Path(out_dir), password)
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, ensure_ascii=False))
