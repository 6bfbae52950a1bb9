"""``xfv hub provision-box``: a bundle a box boots from, and a broker line Mosquitto accepts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import EdgeConfig
from runtime.config import load_config, read_secret
from tests.support.broker import MOSQUITTO, free_port, require_mosquitto
from xfv.cli import main
from xfv.provision import BoxSpec, ProvisionError, mosquitto_hash, provision_box

ROOT = Path(__file__).parents[1]


def provision(tmp_path: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        main,
        [
            "hub",
            "provision-box",
            "--node",
            "box-510104021",
            "--township",
            "510104021",
            "--box-no",
            "3",
            "--broker-host",
            "hub.chengdu.example",
            "--out",
            str(tmp_path / "bundle"),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_the_bundle_is_the_config_the_box_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    summary = provision(tmp_path, "--ca-file", str(ca), "--hub-id", "hub-5101")
    bundle = tmp_path / "bundle"
    assert summary["files"] == ["broker-passwd", "ca.pem", "edge.toml", "mqtt-password"]
    assert summary["broker_user"] == "box-510104021"
    assert bundle.stat().st_mode & 0o777 == 0o700
    assert (bundle / "mqtt-password").stat().st_mode & 0o777 == 0o600
    assert (bundle / "broker-passwd").stat().st_mode & 0o777 == 0o600
    config = load_config(bundle / "edge.toml", EdgeConfig)
    assert (config.node_id, config.township, config.box_no) == ("box-510104021", "510104021", 3)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == (
        "hub.chengdu.example",
        8883,
        True,
    )
    assert config.mqtt.username == "box-510104021"
    assert config.mqtt.ca_file == "/etc/xfv/ca.pem"
    assert config.hub_id == "hub-5101"
    # systemd's LoadCredential= puts the secret in $CREDENTIALS_DIRECTORY
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(bundle))
    assert config.mqtt.password_file is not None
    password = read_secret(config.mqtt.password_file)
    assert len(password) >= 32
    assert password not in (bundle / "edge.toml").read_text()
    assert password not in json.dumps(summary)


def test_reprovisioning_keeps_the_password_only_when_asked(tmp_path: Path) -> None:
    provision(tmp_path)
    first = (tmp_path / "bundle" / "mqtt-password").read_text()
    kept = tmp_path / "kept"
    kept.write_text(first)
    provision(tmp_path, "--password-file", str(kept))
    assert (tmp_path / "bundle" / "mqtt-password").read_text() == first
    provision(tmp_path)  # rotation: a new one
    assert (tmp_path / "bundle" / "mqtt-password").read_text() != first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node": "Box A"}, "node id must be"),
        ({"township": "51x"}, "township"),
        ({"ca_file": Path("/nonexistent/ca.pem")}, "does not exist"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "node": "box-1",
        "township": "510104021",
        "box_no": 1,
        "broker_host": "hub",
    }
    spec = BoxSpec(**(values | change))  # type: ignore[arg-type]
    with pytest.raises(ProvisionError, match=message):
        provision_box(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_says_what_is_wrong(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "hub",
            "provision-box",
            "--node",
            "box-1",
            "--township",
            "5101040",
            "--box-no",
            "1",
            "--broker-host",
            "hub",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code != 0
    assert "township" in result.output


def test_mosquitto_accepts_the_broker_line_and_only_with_the_right_password(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    provision(tmp_path)
    bundle = tmp_path / "bundle"
    password = (bundle / "mqtt-password").read_text().strip()
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {bundle / 'broker-passwd'}\nuser root\n"
    )
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert connect(port, "box-510104021", password) == "Success"
        assert connect(port, "box-510104021", password + "x") == "Not authorized"
        assert connect(port, "box-other", password) == "Not authorized"
    finally:
        broker.terminate()
        broker.wait(5)


def connect(port: int, user: str, password: str) -> str:
    """The broker's CONNACK reason for ``user``/``password``."""
    reasons: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
    client.username_pw_set(user, password)
    client.on_connect = lambda c, u, f, reason, p: reasons.append(str(reason))
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not reasons and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert reasons, f"no CONNACK from the broker on port {port}"
    return reasons[0]


def test_the_hash_is_mosquitto_passwd_format() -> None:
    line = mosquitto_hash("secret", salt=bytes(12))
    assert line.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert line == mosquitto_hash("secret", salt=bytes(12))
    assert line != mosquitto_hash("secret")


def test_the_bundle_fits_the_box_image(tmp_path: Path) -> None:
    """The first-boot installer of ``firmware_config`` accepts what provision-box writes."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    provision(tmp_path, "--ca-file", str(ca))
    spec = importlib.util.spec_from_file_location(
        "xfv_box", ROOT / "firmware_config" / "sbin" / "xfv_box.py"
    )
    assert spec is not None and spec.loader is not None
    xfv_box = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xfv_box)
    assert xfv_box.edge_problems(tmp_path / "bundle" / "edge.toml") == []
    assert xfv_box.SECRET == "mqtt-password"
