"""``ansible/``: lint, syntax, and the roles and playbooks applied for real on this machine.

The playbooks run unchanged (``site.yml``, ``provision-box.yml``, ``rotate-credentials.yml``)
on an inventory made in ``tmp_path`` from the example inventory's ``group_vars``, with vault
files encrypted by ``ansible-vault`` and every path of every role under ``tmp_path``
(``tests/support/deploy.py``). The broker role's Mosquitto is then started on loopback and
probed with paho over TLS; the hub and a box are started on the files the hub and edge roles
wrote. Ansible runs are slow (about half a second a task), hence the longer timeout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.broker import ACL, free_port
from tests.support.deploy import (
    ANSIBLE_DIR,
    EXAMPLE_INVENTORY,
    REPO,
    BoxHost,
    DeploySite,
    MqttProbe,
    Pki,
    RoleMosquitto,
    connect_refused,
    make_pki,
    make_unit_root,
    play_recap,
    require_tools,
    run_ansible,
    start_with_credentials,
    stop_process,
    tool,
    unit_programs,
    unit_settings,
    verify_units,
)
from tests.support.procs import http_json, wait_until

pytestmark = pytest.mark.timeout(300)

PLAYBOOKS = ("site.yml", "provision-box.yml", "rotate-credentials.yml")
ROLES = ("broker", "hub", "edge")
NOT_AUTHORIZED = "Not authorized"
FIRMWARE = REPO / "firmware_config"
FIRMWARE_EDGE_UNIT = FIRMWARE / "systemd/xfv-edge.service"
FIRMWARE_UDEV_RULE = FIRMWARE / "udev/99-xfv-camera.rules"
FIRMWARE_XFV_BOX = FIRMWARE / "sbin/xfv_box.py"


def topic(node: str, channel: str) -> str:
    return f"xfv/v1/edge/{node}/{channel}"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def acl_lines(text: str) -> list[str]:
    """The rules of an ACL file: comments and blank lines dropped, spaces normalised."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and line[0] != "#"]


def conf_directives(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.append((key, value.strip()))
    return out


def passwd_users(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines() if line.strip()]


def new_password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _site(root: Path, pki: Pki, limit: str = "brokers") -> DeploySite:
    require_tools("ansible-playbook", "ansible-vault", "mosquitto_passwd", "openssl")
    site = DeploySite(
        root,
        pki,
        hub_password=new_password(),
        box_passwords={"box-a": new_password(), "box-b": new_password()},
    )
    site.apply("site.yml", limit=limit)
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> DeploySite:
    """site.yml applied to the brokers of a test inventory (module-wide, read-only)."""
    return _site(tmp_path_factory.mktemp("site"), pki)


@pytest.fixture(scope="module")
def broker(site: DeploySite) -> Iterator[RoleMosquitto]:
    """Mosquitto started on the configuration the broker role wrote."""
    mosquitto = RoleMosquitto(site.broker).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def changing_site(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> DeploySite:
    """A second site, boxes included, for the tests that add boxes and change passwords."""
    return _site(tmp_path_factory.mktemp("changing-site"), pki, limit="brokers,boxes")


@pytest.fixture(scope="module")
def changing_broker(changing_site: DeploySite) -> Iterator[RoleMosquitto]:
    mosquitto = RoleMosquitto(changing_site.broker).start()
    yield mosquitto
    mosquitto.stop()


def tls_probe(broker: RoleMosquitto, pki: Pki, user: str, password: str) -> MqttProbe:
    probe = MqttProbe(
        broker.host, broker.tls_port, ca_file=pki.ca_cert, username=user, password=password
    )
    probe.connect()
    return probe


def tls_refusal(broker: RoleMosquitto, pki: Pki, user: str, password: str) -> str | None:
    return connect_refused(
        broker.host, broker.tls_port, ca_file=pki.ca_cert, username=user, password=password
    )


# --- lint and syntax ------------------------------------------------------------------------


def test_yamllint_is_clean() -> None:
    proc = subprocess.run(
        [tool("yamllint"), "--strict", "-c", ".yamllint", "ansible", ".yamllint", ".ansible-lint"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    # On a copy: ansible-lint may leave caches in the project it lints.
    project = tmp_path / "project"
    shutil.copytree(ANSIBLE_DIR, project / "ansible")
    for name in (".ansible-lint", ".yamllint"):
        shutil.copyfile(REPO / name, project / name)
    proc = run_ansible(
        ["ansible-lint", "-c", ".ansible-lint", "--offline", "ansible"],
        tmp_path,
        cwd=project,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax_with_the_example_inventory(playbook: str, tmp_path: Path) -> None:
    proc = run_ansible(
        [
            "ansible-playbook",
            "--syntax-check",
            "-i",
            EXAMPLE_INVENTORY / "hosts.yml",
            "-e",
            "box=box-510104021 township=510104021 box_no=1",
            playbook,
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_inventory_is_by_tier(tmp_path: Path) -> None:
    proc = run_ansible(
        ["ansible-inventory", "-i", EXAMPLE_INVENTORY / "hosts.yml", "--list"], tmp_path
    )
    inventory = yaml.safe_load(proc.stdout)
    children = {name: set(group.get("children", [])) for name, group in inventory.items()}
    assert "city_5101" in children["province_51"]
    assert {"county_510104", "county_510105"} <= children["city_5101"]
    boxes = inventory["_meta"]["hostvars"]
    for county in ("county_510104", "county_510105"):
        for host in inventory[county]["hosts"]:
            assert host.startswith("box-"), host
            assert str(boxes[host]["township"]).startswith(county.removeprefix("county_"))
            assert 1 <= boxes[host]["box_no"] <= 99
    assert inventory["brokers"]["hosts"] == inventory["hubs"]["hosts"] == ["hub-5101"]


def test_no_secret_is_committed() -> None:
    """Vault files exist only as examples with placeholders; no key or password in ansible/."""
    examples = sorted(ANSIBLE_DIR.rglob("vault.yml.example"))
    assert examples, "no vault.yml.example"
    for vault in ANSIBLE_DIR.rglob("vault.yml"):
        assert vault.read_text().startswith("$ANSIBLE_VAULT;"), f"{vault} is not encrypted"
    for example in examples:
        data = yaml.safe_load(example.read_text())
        for name, value in data.items():
            assert name.startswith("vault_"), f"{example}: {name}"
            assert "CHANGE-ME" in yaml.safe_dump(value), f"{example}: {name} is not a placeholder"
    key = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/]{40}")
    hashed = re.compile(r"\$7\$\d+\$[A-Za-z0-9+/]{12,}={0,2}\$[A-Za-z0-9+/]{40}")
    for path in ANSIBLE_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not key.search(text), f"a private key in {path}"
            assert not hashed.search(text), f"a password hash in {path}"


def _documented_names(defaults: Path) -> list[tuple[str, bool]]:
    """(variable, has a comment above it or above the run of variables it belongs to)."""
    out: list[tuple[str, bool]] = []
    commented = False
    for line in defaults.read_text().splitlines():
        if line.startswith("#"):
            commented = True
        elif not line.strip():
            commented = False
        elif re.match(r"^[a-z_][a-z0-9_]*:", line):
            out.append((line.split(":")[0], commented))
    return out


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_documented_and_prefixed(role: str) -> None:
    base = ANSIBLE_DIR / "roles" / role
    for part in ("defaults/main.yml", "tasks/main.yml", "handlers/main.yml", "meta/main.yml"):
        assert (base / part).is_file(), f"{role}: {part} is missing"
    readme = (base / "README.md").read_text()
    names = _documented_names(base / "defaults" / "main.yml")
    assert names
    for name, commented in names:
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with {role}_"
        assert commented, f"{role}: {name} has no comment in defaults/main.yml"
        assert f"`{name}`" in readme, f"{role}: {name} is not in README.md"


# --- the broker role, its files -------------------------------------------------------------


def test_broker_role_writes_the_design_acl(site: DeploySite) -> None:
    assert acl_lines(site.broker.acl_file.read_text()) == acl_lines(ACL)
    assert mode(site.broker.acl_file) == 0o640


def test_broker_role_writes_tls_listener_limits_and_persistence(site: DeploySite) -> None:
    b = site.broker
    conf = conf_directives(b.config_file.read_text())
    values = dict(conf)
    assert values["allow_anonymous"] == "false"
    assert values["password_file"] == str(b.password_file)
    assert values["acl_file"] == str(b.acl_file)
    assert values["persistence"] == "true"
    assert values["persistence_location"] == f"{b.data_dir}/"
    assert values["max_queued_messages"] == "100000"
    assert values["max_inflight_messages"] == "1000"
    listeners = [i for i, (key, _) in enumerate(conf) if key == "listener"]
    assert [conf[i][1] for i in listeners] == [
        f"{b.tls_port} 127.0.0.1",
        f"{b.local_port} 127.0.0.1",
    ]
    tls_section = dict(conf[listeners[0] : listeners[1]])
    assert tls_section["cafile"] == str(b.tls_dir / "ca.pem")
    assert tls_section["certfile"] == str(b.tls_dir / "server.pem")
    assert tls_section["keyfile"] == str(b.tls_dir / "server.key")
    local_section = dict(conf[listeners[1] :])
    assert not {"cafile", "certfile", "keyfile"} & local_section.keys()


def test_broker_role_stores_hashes_and_the_vault_key_only(site: DeploySite, pki: Pki) -> None:
    b = site.broker
    assert passwd_users(b.password_file) == ["hub", "box-a", "box-b"]
    assert all(
        line.split(":", 1)[1].startswith("$7$") for line in b.password_file.read_text().split()
    )
    assert mode(b.password_file) == 0o640
    # The key came out of the encrypted vault file, not from a file on disk.
    assert (b.tls_dir / "server.key").read_text().strip() == pki.server_key.read_text().strip()
    assert mode(b.tls_dir / "server.key") == 0o640
    passwords = [site.hub_password, *site.box_passwords.values()]
    for path in b.root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [p for p in passwords if p in text], f"a password in clear in {path}"


def test_broker_role_is_idempotent(site: DeploySite) -> None:
    recap = play_recap(site.apply("site.yml", limit="brokers").stdout)
    assert recap[site.broker_host_name]["changed"] == 0, recap


# --- the broker role's Mosquitto, probed ----------------------------------------------------


def test_clients_without_valid_credentials_are_refused(
    site: DeploySite, broker: RoleMosquitto, pki: Pki
) -> None:
    for port, ca in ((broker.tls_port, pki.ca_cert), (broker.local_port, None)):
        assert NOT_AUTHORIZED in str(connect_refused(broker.host, port, ca_file=ca))
        assert NOT_AUTHORIZED in str(
            connect_refused(broker.host, port, ca_file=ca, username="box-a", password="wrong")
        )
        assert NOT_AUTHORIZED in str(
            connect_refused(
                broker.host, port, ca_file=ca, username="box-z", password=site.hub_password
            )
        )
    assert tls_refusal(broker, pki, "box-a", site.box_passwords["box-a"]) is None


def test_plain_tcp_to_the_tls_port_is_refused(site: DeploySite, broker: RoleMosquitto) -> None:
    refusal = connect_refused(
        broker.host, broker.tls_port, username="hub", password=site.hub_password
    )
    assert refusal is not None
    assert "Not authorized" not in refusal  # never got as far as the password check


def test_tls_client_trusting_another_ca_is_refused(
    site: DeploySite, broker: RoleMosquitto, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other")
    refusal = connect_refused(
        broker.host,
        broker.tls_port,
        ca_file=other.ca_cert,
        username="hub",
        password=site.hub_password,
    )
    assert refusal is not None and "certificate verify failed" in refusal


def test_box_cannot_publish_for_another_box(
    site: DeploySite, broker: RoleMosquitto, pki: Pki
) -> None:
    hub = tls_probe(broker, pki, "hub", site.hub_password)
    box_a = tls_probe(broker, pki, "box-a", site.box_passwords["box-a"])
    try:
        assert not hub.subscribe("xfv/v1/#").is_failure
        forged = [topic("box-b", c) for c in ("events", "status", "telemetry", "ack", "cmd")]
        forged += [topic("box-a", "ack"), topic("box-a", "cmd"), "xfv/v1/hub/hub-5101/state"]
        for t in forged:
            assert str(box_a.publish(t, b'{"forged": true}')) == NOT_AUTHORIZED, t
        marker = topic("box-a", "events")
        assert not box_a.publish(marker, b'{"seq": 1}').is_failure
        # Same publisher, same subscriber: had a forged message passed, it would come first.
        assert [m.topic for m in hub.drain(marker)] == [marker]
    finally:
        box_a.close()
        hub.close()


def test_box_cannot_read_another_boxs_ack_commands_or_status(
    site: DeploySite, broker: RoleMosquitto, pki: Pki
) -> None:
    hub = tls_probe(broker, pki, "hub", site.hub_password)
    box_a = tls_probe(broker, pki, "box-a", site.box_passwords["box-a"])
    try:
        for t in (topic("box-b", "ack"), topic("box-b", "status"), topic("box-a", "ack")):
            assert not hub.publish(t, b'{"acked_through": 7}', retain=True).is_failure
        for t in (
            "xfv/v1/#",
            topic("box-b", "ack"),
            topic("box-b", "cmd"),
            topic("box-b", "status"),
        ):
            box_a.subscribe(t)
        box_a.subscribe(topic("box-a", "ack"))
        retained = box_a.drain(topic("box-a", "ack"))
        assert {m.topic for m in retained} == {topic("box-a", "ack")}
        # Live: box-b's command and ack, then box-a's command as the marker.
        hub.publish(topic("box-b", "cmd"), b'{"cmd": "resync"}')
        hub.publish(topic("box-b", "ack"), b'{"acked_through": 8}', retain=True)
        hub.publish(topic("box-a", "cmd"), b'{"cmd": "resync"}')
        live = box_a.drain(topic("box-a", "cmd"))
        assert {m.topic for m in live} <= {topic("box-a", "ack"), topic("box-a", "cmd")}
        assert not [m for m in live if "box-b" in m.topic]
    finally:
        box_a.close()
        hub.close()


def test_box_publishes_and_reads_its_own_topics(
    site: DeploySite, broker: RoleMosquitto, pki: Pki
) -> None:
    hub = tls_probe(broker, pki, "hub", site.hub_password)
    box_a = tls_probe(broker, pki, "box-a", site.box_passwords["box-a"])
    try:
        hub.subscribe(topic("box-a", "#"))
        own = [topic("box-a", c) for c in ("status", "telemetry", "events")]
        for t in own:
            assert not box_a.publish(t, b"{}", retain=t.endswith("status")).is_failure, t
        # (Retained messages of earlier tests come first on a new subscription: skip them.)
        assert [m.topic for m in hub.drain(own[-1]) if not m.retain] == own
        assert not hub.publish("xfv/v1/hub/hub-5101/state", b"online", retain=True).is_failure
        assert not hub.publish(
            topic("box-a", "ack"), b'{"acked_through": 3}', retain=True
        ).is_failure
        for t in ("xfv/v1/hub/+/state", topic("box-a", "status"), topic("box-a", "ack")):
            assert not box_a.subscribe(t).is_failure
        got = box_a.drain(topic("box-a", "ack"))
        assert [(m.topic, m.retain) for m in got] == [
            ("xfv/v1/hub/hub-5101/state", True),
            (topic("box-a", "status"), True),
            (topic("box-a", "ack"), True),
        ]
        box_a.subscribe(topic("box-a", "cmd"))
        hub.publish(topic("box-a", "cmd"), b'{"cmd": "resync", "from": 1}')
        assert box_a.drain(topic("box-a", "cmd"))[-1].payload == b'{"cmd": "resync", "from": 1}'
    finally:
        box_a.close()
        hub.close()


def test_hub_reads_and_writes_everything_on_both_listeners(
    site: DeploySite, broker: RoleMosquitto, pki: Pki
) -> None:
    box_b = tls_probe(broker, pki, "box-b", site.box_passwords["box-b"])
    local_hub = MqttProbe(
        broker.host, broker.local_port, username="hub", password=site.hub_password
    )
    local_hub.connect()
    tls_hub = tls_probe(broker, pki, "hub", site.hub_password)
    try:
        local_hub.subscribe("xfv/v1/#")
        box_b.publish(topic("box-b", "events"), b'{"seq": 1}')
        assert local_hub.drain(topic("box-b", "events"))[-1].payload == b'{"seq": 1}'
        every = [topic(n, c) for n in ("box-a", "box-b") for c in ("events", "ack", "cmd")]
        every += ["xfv/v1/hub/hub-5101/state", "xfv/v1/anything/else"]
        for t in every:
            assert not tls_hub.publish(t, b"x").is_failure, t
        got = local_hub.drain(every[-1])
        assert [m.topic for m in got if m.topic in every] == every
    finally:
        tls_hub.close()
        local_hub.close()
        box_b.close()


def test_broker_verify_step_checks_the_served_certificate(
    site: DeploySite, broker: RoleMosquitto, tmp_path: Path
) -> None:
    playbook = tmp_path / "verify.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Verify",
                    "hosts": "brokers",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Verify the broker",
                            "ansible.builtin.import_role": {
                                "name": "broker",
                                "tasks_from": "verify.yml",
                            },
                        }
                    ],
                }
            ]
        )
    )
    ok = site.playbook(playbook, extra_vars={"broker_public_host": "localhost"})
    assert "Check the TLS listener serves a certificate" in ok.stdout
    wrong = site.playbook(
        playbook, extra_vars={"broker_public_host": "broker.elsewhere.example"}, check=False
    )
    assert wrong.returncode != 0
    assert play_recap(wrong.stdout)[site.broker_host_name]["failed"] == 1
    failed_task = wrong.stdout.split("fatal:", 1)[0].rsplit("TASK [", 1)[-1]
    assert failed_task.startswith("broker : Check the TLS listener serves a certificate")


# --- hub and edge roles: the programs run on what they wrote --------------------------------


def assert_box_runs_the_image_unit(box: BoxHost, edge_toml: str, verify_root_dir: Path) -> None:
    """The edge role installed the image's unit and camera rule as they are (the 70- rule of
    older versions gone), with the box's files where that unit looks for them."""
    # The box's unit and camera rule are the image's files, byte for byte, and nothing else.
    edge_units = box.root / "etc/systemd/system"
    assert sorted(u.name for u in edge_units.iterdir()) == ["xfv-edge.service"]
    edge_unit = edge_units / "xfv-edge.service"
    assert edge_unit.read_bytes() == FIRMWARE_EDGE_UNIT.read_bytes()
    rules = box.root / "etc/udev/rules.d"
    assert sorted(r.name for r in rules.iterdir()) == ["99-xfv-camera.rules"]
    assert (rules / "99-xfv-camera.rules").read_bytes() == FIRMWARE_UDEV_RULE.read_bytes()
    # The paths that unit names are where the role put the box's files (below edge_root).
    settings = unit_settings(edge_unit)
    for program in unit_programs(edge_unit):
        installed = box.root / program.lstrip("/")
        assert installed.is_file() and os.access(installed, os.X_OK), program
    assert (box.root / "usr/local/sbin/xfv-box").read_bytes() == FIRMWARE_XFV_BOX.read_bytes()
    assert settings["Service.ExecStart"] == [
        "/opt/xfv/venv/bin/xfv edge run --config /etc/xfv/edge.toml"
    ]
    assert settings["Service.LoadCredential"] == [
        "mqtt-password:/etc/xfv/credentials/mqtt-password"
    ]
    assert settings["Unit.RequiresMountsFor"] == ["/var/lib/xfv"]
    assert f"state_dir = {json.dumps(str(box.root / 'var/lib/xfv'))}" in edge_toml
    # systemd's own verify on the installed unit, in a root where the programs it runs are
    # executable stand-ins (the role's venv links to this machine's xfv, outside that root).
    verify_root = make_unit_root(verify_root_dir, [edge_unit])
    assert verify_units(verify_root, "xfv-edge.service") == ""


def assert_proxy_and_live_reception_files(site: DeploySite) -> None:
    """The hub role's trusted proxy, and its live reception: ``[signaling]`` in hub.toml,
    signaling.toml, the shared token key and the signaling unit."""
    etc = site.hub_root / "etc"
    assert (etc / "credentials" / "token-key").read_text().strip() == site.token_key
    hub_toml = (etc / "hub.toml").read_text()
    assert 'trusted_proxies = ["127.0.0.1", "::1"]' in hub_toml
    assert f'url = "{site.signaling_url}"' in hub_toml
    assert f'internal_url = "ws://127.0.0.1:{site.signaling_port}/ws"' in hub_toml
    signaling_toml = (etc / "signaling.toml").read_text()
    assert 'token_secret_file = "token-key"' in signaling_toml
    assert f'events_db = "{site.hub_root}/state/signaling-events.db"' in signaling_toml
    unit = (site.hub_root / "systemd" / "xfv-signaling.service").read_text()
    assert f"LoadCredential=token-key:{etc}/credentials/token-key" in unit
    assert f"\nReadWritePaths={site.hub_root}/state\n" in unit
    assert (
        f"\nExecStart={site.hub_root}/venv/bin/xfv signaling run --config {etc}/signaling.toml\n"
        in unit
    )


def test_hub_and_edge_roles_write_configs_units_and_credentials(
    site: DeploySite, broker: RoleMosquitto, tmp_path: Path
) -> None:
    require_tools("systemd-analyze", "xfv")
    box = site.box_hosts["box-a"]
    # A rule older versions of the role wrote: the role removes it.
    old_rule = box.root / "etc/udev/rules.d/70-xfv-camera.rules"
    old_rule.parent.mkdir(parents=True, exist_ok=True)
    old_rule.write_text('SUBSYSTEM=="video4linux", SYMLINK+="xfv-camera"\n')
    site.apply("site.yml", limit="hubs,boxes")
    hub_etc = site.hub_root / "etc"
    for config, kind in (
        (hub_etc / "hub.toml", "hub"),
        (hub_etc / "signaling.toml", "signaling"),
        (box.config_dir / "edge.toml", "edge"),
    ):
        proc = subprocess.run(
            [tool("xfv"), kind, "check-config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (hub_etc / "credentials" / "mqtt-password").read_text().strip() == site.hub_password
    assert_proxy_and_live_reception_files(site)
    assert box.credential.read_text().strip() == site.box_passwords["box-a"]
    for secret in (hub_etc / "credentials" / "mqtt-password", box.credential):
        assert mode(secret) == 0o600
        assert mode(secret.parent) == 0o700

    edge_toml = (box.config_dir / "edge.toml").read_text()
    for line in ('node_id = "box-a"', 'township = "510104021"', "box_no = 1"):
        assert line in edge_toml
    assert f"port = {site.tls_port}" in edge_toml and 'password_file = "mqtt-password"' in edge_toml

    hub_units = sorted((site.hub_root / "systemd").glob("*"))
    assert [u.name for u in hub_units] == [
        "xfv-hub-backup.service",
        "xfv-hub-backup.timer",
        "xfv-hub.service",
        "xfv-signaling.service",
    ]
    verify = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", "--generators=no", *map(str, hub_units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    hub_unit = (site.hub_root / "systemd" / "xfv-hub.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=always", "NoNewPrivileges=yes"):
        assert f"\n{line}\n" in hub_unit, line
    assert f"LoadCredential=mqtt-password:{hub_etc}/credentials/mqtt-password" in hub_unit
    backup = (site.hub_root / "systemd" / "xfv-hub-backup.service").read_text()
    venv = site.hub_root / "venv"
    assert (
        f"ExecStart={venv}/bin/xfv hub backup --config {hub_etc}/hub.toml "
        f"--dest {site.hub_root}/backups --keep 14"
    ) in backup

    assert_box_runs_the_image_unit(box, edge_toml, tmp_path / "verify-root")

    # The signaling server, the hub and the box, started on those files the way systemd would:
    # the box and the hub meet on the broker, the hub's relay agent joins signaling.
    signaling = start_with_credentials(
        ["signaling", "run", "--config", str(hub_etc / "signaling.toml")],
        hub_etc / "credentials",
        tmp_path / "signaling.log",
    )
    hub = start_with_credentials(
        ["hub", "run", "--config", str(hub_etc / "hub.toml")],
        hub_etc / "credentials",
        tmp_path / "hub.log",
    )
    edge = start_with_credentials(
        ["edge", "run", "--config", str(box.config_dir / "edge.toml")],
        box.config_dir / "credentials",
        tmp_path / "edge.log",
    )
    health_url = f"http://127.0.0.1:{site.hub_http_port}/api/v1/health"
    signaling_health = f"http://127.0.0.1:{site.signaling_port}/health"
    try:

        def box_online() -> bool:
            for name, proc in (("signaling", signaling), ("hub", hub), ("edge", edge)):
                if proc.poll() is not None:
                    log = (tmp_path / f"{name}.log").read_text()
                    raise AssertionError(f"{name} exited:\n{log[-3000:]}")
            status, body = http_json(health_url)
            return status == 200 and body["broker_connected"] and body["edges_online"] == 1

        wait_until("the hub connected and box-a online", box_online, timeout=60)
        wait_until(
            "the hub's relay agent in signaling",
            lambda: http_json(signaling_health)[1].get("relay") == 1,
            timeout=30,
        )
        assert (site.hub_root / "state" / "signaling-events.db").is_file()
        # The hub role's own verify step, against the hub it configured.
        verify_hub = tmp_path / "verify-hub.yml"
        verify_hub.write_text(
            yaml.safe_dump(
                [
                    {
                        "name": "Verify",
                        "hosts": "hubs",
                        "gather_facts": False,
                        "tasks": [
                            {
                                "name": "Verify the hub",
                                "ansible.builtin.import_role": {
                                    "name": "hub",
                                    "tasks_from": "verify.yml",
                                },
                            }
                        ],
                    }
                ]
            )
        )
        site.playbook(verify_hub)
    finally:
        stop_process(edge)
        stop_process(hub)
        stop_process(signaling)


# --- provision-box.yml and rotate-credentials.yml -------------------------------------------


def test_provision_box_adds_one_box_to_the_broker(
    changing_site: DeploySite, changing_broker: RoleMosquitto, pki: Pki
) -> None:
    site, broker = changing_site, changing_broker
    args = {"box": "box-c", "township": "510104023", "box_no": 2}
    run = site.playbook("provision-box.yml", extra_vars=args)
    assert "RUNNING HANDLER [broker : reload mosquitto]" in run.stdout
    bundle = site.bundle_dir / "box-c"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "broker-passwd",
        "ca.pem",
        "edge.toml",
        "mqtt-password",
    ]
    assert mode(bundle) == 0o700 and mode(bundle / "mqtt-password") == 0o600
    assert (bundle / "ca.pem").read_bytes() == pki.ca_cert.read_bytes()
    check = subprocess.run(
        [tool("xfv"), "edge", "check-config", str(bundle / "edge.toml")],
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    assert passwd_users(site.broker.password_file) == ["hub", "box-a", "box-b", "box-c"]
    password = (bundle / "mqtt-password").read_text().strip()

    # The broker role left service management to us: reload as the service would.
    assert NOT_AUTHORIZED in str(tls_refusal(broker, pki, "box-c", password))
    broker.reload()
    hub = tls_probe(broker, pki, "hub", site.hub_password)
    box_c = MqttProbe(
        broker.host, broker.tls_port, ca_file=bundle / "ca.pem", username="box-c", password=password
    )
    box_c.connect()
    try:
        hub.subscribe("xfv/v1/#")
        assert str(box_c.publish(topic("box-a", "events"), b"{}")) == NOT_AUTHORIZED
        assert not box_c.publish(topic("box-c", "events"), b'{"seq": 1}').is_failure
        assert [m.topic for m in hub.drain(topic("box-c", "events"))] == [topic("box-c", "events")]
    finally:
        box_c.close()
        hub.close()

    # Again for the same box: a new password replaces its entry; the old one stops working.
    site.playbook("provision-box.yml", extra_vars=args)
    assert passwd_users(site.broker.password_file) == ["hub", "box-a", "box-b", "box-c"]
    new = (bundle / "mqtt-password").read_text().strip()
    assert new != password
    broker.reload()
    assert NOT_AUTHORIZED in str(tls_refusal(broker, pki, "box-c", password))
    assert tls_refusal(broker, pki, "box-c", new) is None

    # A box with a password in the vault is re-provisioned with that password.
    site.playbook(
        "provision-box.yml", extra_vars={"box": "box-a", "township": "510104021", "box_no": 1}
    )
    vault_password = site.box_passwords["box-a"]
    assert (site.bundle_dir / "box-a" / "mqtt-password").read_text().strip() == vault_password
    broker.reload()
    assert tls_refusal(broker, pki, "box-a", vault_password) is None


def test_rotate_credentials_replaces_passwords_and_site_keeps_them(
    changing_site: DeploySite, changing_broker: RoleMosquitto, pki: Pki
) -> None:
    site, broker = changing_site, changing_broker
    box_a, box_b = site.box_hosts["box-a"], site.box_hosts["box-b"]
    old_a, old_b = box_a.credential.read_text().strip(), box_b.credential.read_text().strip()
    assert (old_a, old_b) == (site.box_passwords["box-a"], site.box_passwords["box-b"])
    assert tls_refusal(broker, pki, "box-b", old_b) is None

    site.playbook("rotate-credentials.yml", extra_vars={"box": "box-b"})
    new_b = box_b.credential.read_text().strip()
    assert new_b not in (old_b, "") and mode(box_b.credential) == 0o600
    assert box_a.credential.read_text().strip() == old_a
    broker.reload()
    assert NOT_AUTHORIZED in str(tls_refusal(broker, pki, "box-b", old_b))
    assert tls_refusal(broker, pki, "box-b", new_b) is None
    assert tls_refusal(broker, pki, "box-a", old_a) is None

    site.playbook("rotate-credentials.yml", extra_vars={"box": "all"})
    broker.reload()
    for box, old in ((box_a, old_a), (box_b, new_b)):
        new = box.credential.read_text().strip()
        assert new != old
        assert NOT_AUTHORIZED in str(tls_refusal(broker, pki, box.name, old))
        assert tls_refusal(broker, pki, box.name, new) is None

    # site.yml afterwards keeps the rotated passwords (the vault only seeds new boxes).
    current = box_a.credential.read_text()
    entries = site.broker.password_file.read_text()
    site.apply("site.yml", limit="brokers,box-a")
    assert box_a.credential.read_text() == current
    assert site.broker.password_file.read_text() == entries


def test_hub_password_follows_the_vault(
    changing_site: DeploySite, changing_broker: RoleMosquitto, pki: Pki
) -> None:
    """Last of the module: the hub's password on the broker then differs from the vault's."""
    site, broker = changing_site, changing_broker
    old, new = site.hub_password, new_password()
    run = site.apply("site.yml", limit="brokers", extra_vars={"vault_broker_hub_password": new})
    assert play_recap(run.stdout)[site.broker_host_name]["changed"] == 1
    broker.reload()
    assert NOT_AUTHORIZED in str(tls_refusal(broker, pki, "hub", old))
    assert tls_refusal(broker, pki, "hub", new) is None


def test_a_box_boots_from_its_provision_box_bundle(
    site: DeploySite, broker: RoleMosquitto, pki: Pki, tmp_path: Path
) -> None:
    """The issue's end-to-end check: ``xfv hub provision-box`` output, its broker line added
    to the broker the role configured, boots a box that the hub then shows online."""
    site.apply("site.yml", limit="hubs")
    bundle = tmp_path / "bundle"
    made = subprocess.run(
        [
            *(tool("xfv"), "hub", "provision-box", "--node", "box-e", "--township", "510105001"),
            *("--box-no", "1", "--broker-host", broker.host, "--broker-port", str(site.tls_port)),
            *("--ca-file", str(pki.ca_cert), "--out", str(bundle)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["broker_user"] == "box-e"
    with site.broker.password_file.open("a") as passwd:
        passwd.write((bundle / "broker-passwd").read_text())
    broker.reload()
    # The image puts ca.pem in /etc/xfv and the data in /var/lib/xfv, and its box has a camera
    # and port 8080 to itself; this machine is not that image, so those four move.
    config = (bundle / "edge.toml").read_text()
    config = config.replace('"/etc/xfv/ca.pem"', json.dumps(str(bundle / "ca.pem")))
    config = config.replace('"/var/lib/xfv"', json.dumps(str(tmp_path / "state")))
    config = config.replace('"/dev/xfv-camera"', '"synthetic"')
    config += f"\n[kiosk]\nport = {free_port()}\n\n[discovery]\nannounce = false\n"
    (bundle / "edge.toml").write_text(config)
    hub_etc = site.hub_root / "etc"
    hub = start_with_credentials(
        ["hub", "run", "--config", str(hub_etc / "hub.toml")],
        hub_etc / "credentials",
        tmp_path / "hub.log",
    )
    edge = start_with_credentials(
        ["edge", "run", "--config", str(bundle / "edge.toml")], bundle, tmp_path / "edge.log"
    )
    try:

        def box_e_online() -> bool:
            for name, proc in (("hub", hub), ("edge", edge)):
                if proc.poll() is not None:
                    log = (tmp_path / f"{name}.log").read_text()
                    raise AssertionError(f"{name} exited:\n{log[-3000:]}")
            status, body = http_json(f"http://127.0.0.1:{site.hub_http_port}/api/v1/health")
            hub_log = (tmp_path / "hub.log").read_text()
            return status == 200 and body["broker_connected"] and "box box-e online" in hub_log

        wait_until("box-e online at the hub", box_e_online, timeout=60)
    finally:
        stop_process(edge)
        stop_process(hub)
