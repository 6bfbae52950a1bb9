#!/usr/bin/python3
"""Set up a township box from its bundle; installed as /usr/local/sbin/xfv-box by user-data.

The IT office copies the box's bundle to the SD card's FAT partition (/boot/firmware/xfv/):
edge.toml, ca.pem, mqtt-password and the xinfang_video-*.whl wheel (optionally a wheels/
folder of its dependencies for an offline install). On first boot cloud-init runs
``xfv-box firstboot``: ``install-bundle``, ``data-mount``, ``install-package``.

- install-bundle: moves mqtt-password to /etc/xfv/credentials/ (0600 root) and wipes it from
  the FAT partition first of all, then checks edge.toml against this image (the credential
  name, /var/lib/xfv, /etc/xfv/ca.pem, kiosk port 8080) and installs edge.toml and ca.pem.
- data-mount: when a partition labelled xfv-data is present, adds it to /etc/fstab at
  /var/lib/xfv and mounts it (cloud-init's ``mounts:`` ignores ``LABEL=`` devices).
- install-package: creates /opt/xfv/venv, installs the wheel, runs ``xfv edge check-config``.
- check-state-dir DIR: exits 1 when DIR is on a RAM filesystem (the overlay of a read-only
  root), where cases would be lost at reboot; xfv-edge.service runs it before every start.

Standard library only: it runs with the system's python3 before the venv exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

BUNDLE = Path("/boot/firmware/xfv")
VENV = Path("/opt/xfv/venv")
SECRET = "mqtt-password"
STATE_DIR = "/var/lib/xfv"
CA_FILE = "/etc/xfv/ca.pem"
KIOSK_PORT = 8080  # the URL in xfv-kiosk.service
RAM_FILESYSTEMS = {"overlay", "tmpfs", "ramfs"}
DATA_LABEL = "xfv-data"
# nofail: boot goes on without it; xfv-edge.service (RequiresMountsFor=) then does not start
# rather than write cases beside the missing partition.
FSTAB_LINE = (
    f"LABEL={DATA_LABEL} {STATE_DIR} ext4 defaults,nofail,noatime,x-systemd.device-timeout=30s 0 2"
)


class SetupError(Exception):
    """The bundle or the box is not as this image needs it; one line per problem."""


def say(message: str) -> None:
    print(f"xfv-box: {message}", flush=True)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``, owned by root when we are root."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def wipe(path: Path) -> None:
    """Overwrite ``path`` with zeros, then delete it (a FAT partition keeps deleted data)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def install_secret(bundle: Path, etc: Path) -> None:
    """Move the broker password off the FAT partition into the credential store."""
    credentials = etc / "credentials"
    target = credentials / SECRET
    source = bundle / SECRET
    if not source.exists():
        if target.exists():
            say(f"{source} is gone, keeping the installed {target}")
            return
        raise SetupError(f"{source}: missing, and no {target} is installed")
    data = source.read_bytes()
    if not data.strip():
        wipe(source)
        raise SetupError(f"{source}: empty (removed); put the box's password in the bundle")
    credentials.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials.chmod(0o700)
    write_file(target, data, 0o600)
    wipe(source)
    say(f"installed {target} and removed {source}")


def edge_problems(path: Path) -> list[str]:
    """What in edge.toml does not fit this image (units, paths, kiosk URL)."""
    try:
        config = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return [f"{path}: missing"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [f"{path}: cannot read: {exc}"]
    problems = []
    mqtt = config.get("mqtt", {})
    kiosk = config.get("kiosk", {})
    expected = {
        "mqtt.password_file": (
            mqtt.get("password_file"),
            SECRET,
            "xfv-edge.service loads it as a credential",
        ),
        "state_dir": (config.get("state_dir"), STATE_DIR, "the unit's StateDirectory="),
        "kiosk.port": (kiosk.get("port", KIOSK_PORT), KIOSK_PORT, "the URL xfv-kiosk opens"),
    }
    if "ca_file" in mqtt:
        expected["mqtt.ca_file"] = (mqtt["ca_file"], CA_FILE, "where ca.pem is installed")
    for key, (value, want, why) in expected.items():
        if value != want:
            problems.append(f"{path}: {key} must be {want!r} ({why}), got {value!r}")
    if config.get("clerk_password_file"):
        say(
            f"{path}: clerk_password_file is set but this image loads only the "
            f"{SECRET!r} credential: add a LoadCredential= drop-in for it"
        )
    return problems


def install_bundle(bundle: Path, root: Path) -> None:
    etc = root / "etc/xfv"
    etc.mkdir(mode=0o755, parents=True, exist_ok=True)
    install_secret(bundle, etc)  # first: the secret leaves the FAT partition whatever follows
    problems = edge_problems(bundle / "edge.toml")
    ca = bundle / "ca.pem"
    if not ca.exists():
        problems.append(f"{ca}: missing")
    elif b"-----BEGIN CERTIFICATE-----" not in ca.read_bytes():
        problems.append(f"{ca}: not a PEM certificate")
    if problems:
        raise SetupError("\n".join(problems))
    write_file(etc / "edge.toml", (bundle / "edge.toml").read_bytes(), 0o644)
    write_file(etc / "ca.pem", ca.read_bytes(), 0o644)
    say(f"installed {etc / 'edge.toml'} and {etc / 'ca.pem'}")


def data_mount(root: Path) -> None:
    """Mount the xfv-data partition at /var/lib/xfv from now on, when the box has one."""
    device = root / "dev/disk/by-label" / DATA_LABEL
    if not device.exists():
        say(f"no partition labelled {DATA_LABEL}: {STATE_DIR} stays on the root file system")
        return
    live = root == Path("/")
    if live:
        fstype = subprocess.run(
            ["blkid", "-s", "TYPE", "-o", "value", str(device)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if fstype != "ext4":
            raise SetupError(f"{device}: the {DATA_LABEL} partition must be ext4, got {fstype!r}")
    fstab = root / "etc/fstab"
    lines = fstab.read_text("utf-8").splitlines() if fstab.exists() else []
    entries = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    if any(entry[1:2] == [STATE_DIR] for entry in entries):
        say(f"{fstab} already mounts something at {STATE_DIR}; leaving it")
    else:
        write_file(fstab, ("\n".join([*lines, FSTAB_LINE]) + "\n").encode(), 0o644)
        say(f"{fstab}: {DATA_LABEL} is mounted at {STATE_DIR} from now on")
    mountpoint = root / STATE_DIR.lstrip("/")
    mountpoint.mkdir(parents=True, exist_ok=True)
    if live and not os.path.ismount(mountpoint):
        run("systemctl", "daemon-reload")
        run("mount", STATE_DIR)


def run(*args: str | Path) -> None:
    say("running " + " ".join(str(a) for a in args))
    result = subprocess.run([str(a) for a in args], check=False)
    if result.returncode != 0:
        raise SetupError(f"{args[0]} exited with {result.returncode}")


def install_package(bundle: Path, venv: Path, config: Path) -> None:
    wheels = sorted(bundle.glob("xinfang_video-*.whl"))
    if len(wheels) != 1:
        found = ", ".join(w.name for w in wheels) or "none"
        raise SetupError(f"{bundle}: needs exactly one xinfang_video-*.whl, found {found}")
    if not (venv / "bin/python").exists():
        run(sys.executable, "-m", "venv", venv)
    offline = bundle / "wheels"
    source = ["--no-index", "--find-links", str(offline)] if offline.is_dir() else []
    run(venv / "bin/pip", "install", "--upgrade", *source, wheels[0])
    run(venv / "bin/xfv", "edge", "check-config", config)


def check_state_dir(directory: Path) -> None:
    """Refuse a state directory that lives in RAM: its cases would not survive a reboot."""
    try:
        st = directory.stat()
    except OSError as exc:
        raise SetupError(f"{directory}: {exc.strerror}") from None
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    fstype = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[2] == device:
            fstype = fields[fields.index("-") + 1]
    if fstype is None:
        raise SetupError(f"{directory}: no mount of device {device} in /proc/self/mountinfo")
    if fstype in RAM_FILESYSTEMS:
        raise SetupError(
            f"{directory} is on {fstype}, in RAM: cases would be lost at reboot. With a read-only "
            "root, mount a partition labelled xfv-data there (firmware_config/README.md)"
        )
    say(f"{directory} is on {fstype}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfv-box", description="Set up a box from its bundle.")
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="the box's bundle folder")
    sub = parser.add_subparsers(dest="command", required=True)
    bundle_cmd = sub.add_parser("install-bundle", help="install the secret, edge.toml, ca.pem")
    bundle_cmd.add_argument("--root", type=Path, default=Path("/"), help="install below ROOT")
    package_cmd = sub.add_parser("install-package", help="create the venv, install the wheel")
    package_cmd.add_argument("--venv", type=Path, default=VENV)
    mount_cmd = sub.add_parser("data-mount", help="mount the xfv-data partition, if any")
    mount_cmd.add_argument("--root", type=Path, default=Path("/"), help="work below ROOT")
    sub.add_parser("firstboot", help="install-bundle, data-mount, install-package")
    state_cmd = sub.add_parser("check-state-dir", help="fail when DIR is in RAM")
    state_cmd.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "install-bundle":
            install_bundle(args.bundle, args.root)
        elif args.command == "install-package":
            install_package(args.bundle, args.venv, Path("/etc/xfv/edge.toml"))
        elif args.command == "data-mount":
            data_mount(args.root)
        elif args.command == "firstboot":
            install_bundle(args.bundle, Path("/"))
            data_mount(Path("/"))
            install_package(args.bundle, VENV, Path("/etc/xfv/edge.toml"))
        else:
            check_state_dir(args.directory)
    except SetupError as exc:
        for line in str(exc).splitlines():
            print(f"xfv-box: {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
