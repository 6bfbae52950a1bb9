"""The box image (firmware_config/): checked by the tools that will read it on the box.

systemd's own ``systemd-analyze verify`` and ``security`` read the units, cloud-init's own
schema check and network renderer read user-data and network-config, udev's own rules parser
(``udevadm test``) reads the camera rule, and ``xfv-box`` runs for real against a bundle in a
temporary directory. A missing tool fails the test with the Debian package to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.deploy import make_unit_root, unit_settings, verify_units
from tests.support.procs import XFV

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_config"
EDGE_UNIT = FIRMWARE / "systemd/xfv-edge.service"
KIOSK_UNIT = FIRMWARE / "systemd/xfv-kiosk.service"
UDEV_RULE = FIRMWARE / "udev/99-xfv-camera.rules"
XFV_BOX = FIRMWARE / "sbin/xfv_box.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # the box runs xfv-box with the system's python3

# tool -> the Debian package that provides it
TOOLS = {
    "systemd-analyze": "systemd",
    "udevadm": "udev",
    "cloud-init": "cloud-init",
    "unshare": "util-linux",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is missing: install the Debian package {TOOLS[name]} "
            f"(apt-get install {TOOLS[name]})"
        )
    return path


def run(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def embed_files() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embed_files", FIRMWARE / "embed_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_data() -> dict[str, Any]:
    data = yaml.safe_load((FIRMWARE / "user-data").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def edge_example() -> dict[str, Any]:
    return tomllib.loads((FIRMWARE / "edge.example.toml").read_text("utf-8"))


# --- systemd units ------------------------------------------------------------------------


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A root for ``systemd-analyze --root`` with our two units and stand-ins for the programs
    they run (``make_unit_root``)."""
    return make_unit_root(tmp_path / "root", [EDGE_UNIT, KIOSK_UNIT])


def test_units_pass_systemd_analyze_verify(unit_root: Path) -> None:
    # systemd-analyze exits 0 on unknown keys and bad values; it only prints them. So any
    # output at all is a failure.
    assert verify_units(unit_root, "xfv-edge.service", "xfv-kiosk.service") == ""


@pytest.mark.parametrize(
    ("change", "reported"),
    [
        (("Restart=always", "Restrat=always"), "Unknown key 'Restrat' in section [Service]"),
        (("WatchdogSec=30", "WatchdogSec=thirty"), "Failed to parse sec value"),
        (("Type=notify", "Type=notifying"), "Failed to parse service type"),
        (("/opt/xfv/venv/bin/xfv edge", "/opt/xfv/venv/bin/xfvv edge"), "is not executable"),
    ],
)
def test_verify_reports_a_broken_unit(
    unit_root: Path, change: tuple[str, str], reported: str
) -> None:
    broken = unit_root / "etc/systemd/system/xfv-broken.service"
    text = EDGE_UNIT.read_text("utf-8")
    assert change[0] in text
    broken.write_text(text.replace(change[0], change[1], 1))
    assert reported in verify_units(unit_root, "xfv-broken.service")


def test_edge_unit_exposure_is_low(unit_root: Path) -> None:
    result = run(
        tool("systemd-analyze"),
        "security",
        "--offline=yes",
        f"--root={unit_root}",
        "/etc/systemd/system/xfv-edge.service",
        check=True,
    )
    match = re.search(r"Overall exposure level for xfv-edge\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= 2.5, result.stdout


def test_edge_unit_is_notify_watchdog_and_credentials() -> None:
    unit = unit_settings(EDGE_UNIT)
    example = edge_example()
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.WatchdogSec"] == ["30"]
    assert unit["Service.Restart"] == ["always"]
    assert unit["Service.ExecStart"] == [
        "/opt/xfv/venv/bin/xfv edge run --config /etc/xfv/edge.toml"
    ]
    assert unit["Service.User"] == ["xfv"]
    assert set(unit["Service.SupplementaryGroups"][0].split()) == {"video", "audio"}
    # The credential name is edge.toml's bare password_file; the path is where xfv-box puts it.
    credential, _, source = unit["Service.LoadCredential"][0].partition(":")
    assert credential == example["mqtt"]["password_file"]
    assert source == "/etc/xfv/credentials/mqtt-password"
    assert Path("/var/lib") / unit["Service.StateDirectory"][0] == Path(example["state_dir"])
    assert unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.DevicePolicy"] == ["closed"]
    assert f"{example['camera']} rw" in unit["Service.DeviceAllow"]
    assert "char-video4linux rw" in unit["Service.DeviceAllow"]
    assert "char-alsa rw" in unit["Service.DeviceAllow"]
    assert set(unit["Unit.After"][0].split()) >= {"network-online.target", "time-sync.target"}


def test_kiosk_unit_opens_the_edge_kiosk_page_without_capture() -> None:
    unit = unit_settings(KIOSK_UNIT)
    example = edge_example()
    command = unit["Service.ExecStart"][0].split()
    assert command[0] == "/usr/bin/cage"
    assert "/usr/bin/chromium" in command
    assert command[-1] == f"http://127.0.0.1:{example['kiosk']['port']}/"
    assert "--kiosk" in command
    assert not [flag for flag in command if "fake-ui-for-media-stream" in flag]
    assert unit["Service.User"] == ["xfv-kiosk"]
    assert unit["Service.TTYPath"] == ["/dev/tty1"]
    assert "xfv-edge.service" in unit["Unit.After"]
    policy = json.loads((FIRMWARE / "chromium/xfv-policy.json").read_text("utf-8"))
    assert policy["VideoCaptureAllowed"] is False
    assert policy["AudioCaptureAllowed"] is False
    assert policy["AutofillAddressEnabled"] is False
    assert policy["URLAllowlist"] == [command[-1].rstrip("/")]


def conf_settings(path: Path) -> dict[str, str]:
    return {
        k.strip(): v.strip()
        for k, _, v in (
            line.partition("=")
            for line in path.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith(("#", "["))
        )
    }


@pytest.mark.parametrize(
    ("ours", "defaults"),
    [("journald/xfv.conf", "journald.conf"), ("timesyncd/xfv.conf", "timesyncd.conf")],
)
def test_journald_and_timesyncd_dropins_use_known_keys(ours: str, defaults: str) -> None:
    """Every key is one that systemd's shipped /etc/systemd/*.conf lists, and every time span
    parses with systemd's own parser."""
    shipped = Path("/etc/systemd") / defaults
    assert shipped.exists(), f"{shipped} is missing: install the Debian package systemd"
    known = set(re.findall(r"^#?([A-Za-z]+)=", shipped.read_text(), re.MULTILINE))
    settings = conf_settings(FIRMWARE / ours)
    assert settings, f"{ours} sets nothing"
    assert set(settings) <= known, f"unknown keys in {ours}: {set(settings) - known}"
    for key, value in settings.items():
        if key.endswith("Sec"):
            run(tool("systemd-analyze"), "timespan", value, check=True)
    assert run(tool("systemd-analyze"), "timespan", "1 fortnight").returncode != 0


def test_journald_bounds() -> None:
    settings = conf_settings(FIRMWARE / "journald/xfv.conf")
    assert settings["SystemMaxUse"] == "50M"
    assert settings["RuntimeMaxUse"] == "20M"
    assert settings["MaxRetentionSec"] == "1month"


# --- udev -------------------------------------------------------------------------------


def udev_parse(rules: str) -> list[str]:
    """Load ``rules`` as /run/udev/rules.d/99-xfv-camera.rules with udev's own parser
    (``udevadm test``, systemd 252 has no ``udevadm verify``); the problems it reports.
    /run is a tmpfs in a private mount namespace, so nothing of this machine changes."""
    script = (
        "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/udev/rules.d; "
        'cat > /run/udev/rules.d/99-xfv-camera.rules; exec "$0" test /sys/class/net/lo'
    )
    result = subprocess.run(
        [tool("unshare"), "--mount", "sh", "-c", script, tool("udevadm")],
        input=rules,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    name = "/run/udev/rules.d/99-xfv-camera.rules"
    assert f"Reading rules file: {name}" in output, output[-3000:]
    return [line for line in output.splitlines() if line.startswith(f"{name}:")]


def test_udev_rule_parses() -> None:
    assert udev_parse(UDEV_RULE.read_text("utf-8")) == []


@pytest.mark.parametrize(
    ("bad", "reported"),
    [
        ('SUBSYSTEM=="video4linux", SYMLNK+="xfv-camera"', "Invalid key 'SYMLNK'"),
        ('SUBSYSTEM=="video4linux", GROUP=="video"', "Invalid operator for GROUP"),
        ('SUBSYSTEM="video4linux", SYMLINK+="xfv-camera"', "Invalid operator for SUBSYSTEM"),
    ],
)
def test_udev_parser_reports_a_broken_rule(bad: str, reported: str) -> None:
    problems = udev_parse(bad + "\n")
    assert problems, f"udev accepted {bad!r}"
    assert reported in problems[0]


def test_udev_rule_names_the_camera_the_edge_opens() -> None:
    rule = [line for line in UDEV_RULE.read_text("utf-8").splitlines() if not line.startswith("#")]
    assert len(rule) == 1
    keys = dict(re.findall(r'([A-Z_]+(?:\{[^}]+\})?)[=!+:]{1,2}"([^"]*)"', rule[0]))
    assert keys["SUBSYSTEM"] == "video4linux"
    assert keys["ATTR{index}"] == "0"
    assert ":capture:" in keys["ENV{ID_V4L_CAPABILITIES}"]
    assert keys["GROUP"] == "video"
    assert f"/dev/{keys['SYMLINK']}" == edge_example()["camera"]


# --- cloud-init ---------------------------------------------------------------------------


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("cloud-init"), "schema", "--config-file", path)


def known_top_level_keys() -> set[str]:
    """The top-level keys cloud-init's published JSON schema defines (cloud-init 22.4's
    ``schema`` command does not itself reject unknown ones)."""
    where = run(
        SYSTEM_PYTHON,
        "-c",
        "import cloudinit.config.schema as s; print(s.get_schema_dir())",
        check=True,
    ).stdout.strip()
    schema = json.loads((Path(where) / "schema-cloud-config-v1.json").read_text())
    keys: set[str] = set()
    for ref in schema["allOf"]:
        keys |= set(schema["$defs"][ref["$ref"].rsplit("/", 1)[1]].get("properties", {}))
    return keys


def test_user_data_passes_cloud_init_schema() -> None:
    result = cloud_init_schema(FIRMWARE / "user-data")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout
    unknown = set(user_data()) - known_top_level_keys()
    assert not unknown, f"user-data keys cloud-init does not know (ignored on the box): {unknown}"


@pytest.mark.parametrize(
    ("mutation", "reported"),
    [
        ("packages: python3-venv", "packages: 'python3-venv' is not of type 'array'"),
        ("users: 5", "users: 5 is not of type"),
        ("package_update: maybe", "package_update: 'maybe' is not of type 'boolean'"),
    ],
)
def test_cloud_init_schema_reports_wrong_types(
    tmp_path: Path, mutation: str, reported: str
) -> None:
    bad = tmp_path / "user-data"
    bad.write_text("#cloud-config\n" + mutation + "\n")
    result = cloud_init_schema(bad)
    assert result.returncode != 0
    assert reported in result.stdout + result.stderr


def test_unknown_top_level_key_is_caught() -> None:
    assert "write_files" in known_top_level_keys()
    assert "write_file" not in known_top_level_keys()


def net_convert(path: Path, out: Path, kind: str) -> subprocess.CompletedProcess[str]:
    return run(
        tool("cloud-init"),
        "devel",
        "net-convert",
        "--network-data",
        path,
        "--kind",
        "yaml",
        "--distro",
        "debian",
        "--output-kind",
        kind,
        "--directory",
        out,
    )


def test_network_config_renders_dhcp_for_network_manager(tmp_path: Path) -> None:
    result = net_convert(FIRMWARE / "network-config", tmp_path, "network-manager")
    assert result.returncode == 0, result.stderr
    connection = tmp_path / "etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection"
    text = connection.read_text()
    assert "interface-name=eth0" in text
    assert re.search(r"\[ipv4\]\nmethod=auto", text), text


def test_commented_wifi_example_is_valid(tmp_path: Path) -> None:
    """Uncommented, the Wi-Fi example parses and renders (as netplan: cloud-init 22.4 renders
    Wi-Fi for netplan only; Raspberry Pi OS's newer cloud-init also for NetworkManager)."""
    lines = []
    for line in (FIRMWARE / "network-config").read_text("utf-8").splitlines():
        match = re.match(r"^  # ( *\S.*)$", line)
        lines.append("  " + match.group(1) if match and ":" in match.group(1) else line)
    wifi = tmp_path / "network-config"
    wifi.write_text("\n".join(lines) + "\n")
    assert yaml.safe_load(wifi.read_text())["network"]["wifis"]["wlan0"]["dhcp4"] is True
    result = net_convert(wifi, tmp_path / "out", "netplan")
    assert result.returncode == 0, result.stderr
    rendered = next((tmp_path / "out").rglob("*.yaml")).read_text()
    assert "office-ssid" in rendered


def test_broken_network_config_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "network-config"
    bad.write_text("network:\n  version: 2\n  ethernet:\n    eth0:\n      dhcp4: true\n")
    result = net_convert(bad, tmp_path / "out", "network-manager")
    assert result.returncode != 0
    assert "No handler found for command 'ethernet'" in result.stderr


def test_user_data_embeds_the_files_byte_for_byte() -> None:
    embedded = embed_files().EMBEDDED
    files = {w["path"]: w for w in user_data()["write_files"]}
    for target, source in embedded.items():
        assert target in files, f"user-data does not write {target}"
        expected = (FIRMWARE / source).read_text("utf-8")
        assert files[target]["content"] == expected, (
            f"user-data's {target} differs from firmware_config/{source}: "
            "run python3 firmware_config/embed_files.py"
        )
    assert files["/usr/local/sbin/xfv-box"]["permissions"] == "0755"
    # every box file in firmware_config/ is in user-data
    sources = {
        str(p.relative_to(FIRMWARE))
        for folder in ("systemd", "udev", "journald", "timesyncd", "chromium", "sbin")
        for p in (FIRMWARE / folder).iterdir()
        if p.is_file()
    }
    assert sources == set(embedded.values())


def test_embed_files_finds_drift(tmp_path: Path) -> None:
    module = embed_files()
    text = (FIRMWARE / "user-data").read_text("utf-8")
    assert module.render(text) == text
    base = tmp_path / "fw"
    shutil.copytree(FIRMWARE, base)
    unit = base / "systemd/xfv-edge.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSec=60"))
    rendered = module.render(text, base)
    assert rendered != text
    assert "      WatchdogSec=60\n" in rendered


def test_user_data_sets_up_users_packages_and_services() -> None:
    data = user_data()
    users = {u["name"]: u for u in data["users"]}
    assert users["xfv"]["system"] is True
    assert set(users["xfv"]["groups"]) == {"video", "audio"}
    assert "video" not in users["xfv-kiosk"].get("groups", [])
    assert {"python3-venv", "chromium", "cage", "systemd-timesyncd"} <= set(data["packages"])
    commands = [c if isinstance(c, str) else " ".join(c) for c in data["runcmd"]]
    assert commands[0] == "set -e"
    assert commands.index("/usr/local/sbin/xfv-box firstboot") < commands.index(
        "systemctl daemon-reload"
    )
    enable = next(c for c in commands if c.startswith("systemctl enable"))
    assert "xfv-edge.service" in enable and "xfv-kiosk.service" in enable


def test_edge_example_passes_check_config() -> None:
    result = run(XFV, "edge", "check-config", FIRMWARE / "edge.example.toml")
    assert result.returncode == 0, result.stderr


# --- xfv-box, run for real with the system's python3 ---------------------------------------


def xfv_box(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert Path(SYSTEM_PYTHON).exists(), "python3 is missing: apt-get install python3"
    return run(SYSTEM_PYTHON, XFV_BOX, *args)


CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def bundle(directory: Path, edge_toml: str | None = None) -> Path:
    directory.mkdir(parents=True)
    example = (FIRMWARE / "edge.example.toml").read_text("utf-8")
    (directory / "edge.toml").write_text(edge_toml if edge_toml is not None else example)
    (directory / "ca.pem").write_text(CA)
    (directory / "mqtt-password").write_text("s3cret-box-password\n")
    return directory


def mode_and_owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid


def test_install_bundle_moves_the_secret_off_the_boot_partition(tmp_path: Path) -> None:
    source = bundle(tmp_path / "boot/firmware/xfv")
    root = tmp_path / "root"
    result = xfv_box("--bundle", source, "install-bundle", "--root", root)
    assert result.returncode == 0, result.stderr
    etc = root / "etc/xfv"
    owner = os.geteuid()  # root on the box (and in `make test`): files belong to root
    assert not (source / "mqtt-password").exists()
    secret = etc / "credentials/mqtt-password"
    assert secret.read_text() == "s3cret-box-password\n"
    assert mode_and_owner(secret) == (0o600, owner)
    assert mode_and_owner(etc / "credentials") == (0o700, owner)
    assert mode_and_owner(etc / "edge.toml") == (0o644, owner)
    assert (etc / "edge.toml").read_bytes() == (source / "edge.toml").read_bytes()
    assert (etc / "ca.pem").read_text() == CA
    # cloud-init runs once, but a second run (after a fix) keeps the installed secret
    again = xfv_box("--bundle", source, "install-bundle", "--root", root)
    assert again.returncode == 0, again.stderr
    assert "keeping the installed" in again.stdout
    assert secret.read_text() == "s3cret-box-password\n"


def test_install_bundle_refuses_an_edge_toml_the_image_cannot_run(tmp_path: Path) -> None:
    example = (FIRMWARE / "edge.example.toml").read_text("utf-8")
    wrong = example.replace(
        'password_file = "mqtt-password"', 'password_file = "/etc/xfv/mqtt-password"'
    ).replace('state_dir = "/var/lib/xfv"', 'state_dir = "/srv/xfv"')
    source = bundle(tmp_path / "xfv", wrong)
    root = tmp_path / "root"
    result = xfv_box("--bundle", source, "install-bundle", "--root", root)
    assert result.returncode == 1
    assert (
        "mqtt.password_file must be 'mqtt-password' (xfv-edge.service loads it as a "
        "credential), got '/etc/xfv/mqtt-password'" in result.stderr
    )
    assert "state_dir must be '/var/lib/xfv'" in result.stderr
    assert "got '/srv/xfv'" in result.stderr
    assert not (root / "etc/xfv/edge.toml").exists()
    # the secret left the FAT partition all the same
    assert not (source / "mqtt-password").exists()
    assert (root / "etc/xfv/credentials/mqtt-password").exists()


def test_install_bundle_without_a_secret_says_so(tmp_path: Path) -> None:
    source = bundle(tmp_path / "xfv")
    (source / "mqtt-password").unlink()
    result = xfv_box("--bundle", source, "install-bundle", "--root", tmp_path / "root")
    assert result.returncode == 1
    assert "mqtt-password: missing, and no" in result.stderr


@pytest.mark.parametrize("wheels", [[], ["0", "1"]], ids=["none", "two"])
def test_install_package_needs_exactly_one_wheel(tmp_path: Path, wheels: list[str]) -> None:
    source = bundle(tmp_path / "xfv")
    for name in wheels:
        (source / f"xinfang_video-0.1.{name}-py3-none-any.whl").write_bytes(b"")
    venv = tmp_path / "venv"
    result = xfv_box("--bundle", source, "install-package", "--venv", venv)
    assert result.returncode == 1
    assert "needs exactly one xinfang_video-*.whl, found" in result.stderr
    assert not venv.exists()


def test_check_state_dir_refuses_ram(tmp_path: Path) -> None:
    ok = xfv_box("check-state-dir", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert Path("/dev/shm").is_dir(), "this test needs /dev/shm (a tmpfs)"
    ram = xfv_box("check-state-dir", "/dev/shm")
    assert ram.returncode == 1
    assert "/dev/shm is on tmpfs, in RAM: cases would be lost at reboot" in ram.stderr


def test_data_mount_adds_the_labelled_partition_to_fstab_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    fstab = root / "etc/fstab"
    original = "proc /proc proc defaults 0 0\nPARTUUID=1234-02 / ext4 defaults,noatime 0 1\n"
    fstab.write_text(original)

    none = xfv_box("data-mount", "--root", root)
    assert none.returncode == 0, none.stderr
    assert "no partition labelled xfv-data" in none.stdout
    assert fstab.read_text() == original

    label = root / "dev/disk/by-label/xfv-data"
    label.parent.mkdir(parents=True)
    label.write_text("")
    for _ in range(2):
        result = xfv_box("data-mount", "--root", root)
        assert result.returncode == 0, result.stderr
    lines = fstab.read_text().splitlines()
    assert lines[:2] == original.splitlines()
    assert lines[2:] == [
        "LABEL=xfv-data /var/lib/xfv ext4 defaults,nofail,noatime,x-systemd.device-timeout=30s 0 2"
    ]
    assert (root / "var/lib/xfv").is_dir()
