"""Copy the unit files, the udev rule and the other box files into user-data's write_files.

user-data must be self-contained (the SD card carries nothing else of ours but the bundle),
while the files stay readable and testable on their own. After editing one of them, run
``python3 firmware_config/embed_files.py``; tests/deploy/test_firmware.py fails while
user-data and the files differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
USER_DATA = HERE / "user-data"

# where user-data writes it on the box -> its source in firmware_config/
EMBEDDED = {
    "/etc/systemd/system/xfv-edge.service": "systemd/xfv-edge.service",
    "/etc/systemd/system/xfv-kiosk.service": "systemd/xfv-kiosk.service",
    "/etc/udev/rules.d/99-xfv-camera.rules": "udev/99-xfv-camera.rules",
    "/etc/systemd/journald.conf.d/xfv.conf": "journald/xfv.conf",
    "/etc/systemd/timesyncd.conf.d/xfv.conf": "timesyncd/xfv.conf",
    "/etc/chromium/policies/managed/xfv.json": "chromium/xfv-policy.json",
    "/usr/local/sbin/xfv-box": "sbin/xfv_box.py",
}

ENTRY = re.compile(r"^  - path: (\S+)$")
CONTENT = "    content: |"
INDENT = " " * 6


def block(source: Path) -> list[str]:
    text = source.read_text("utf-8")
    if not text.endswith("\n") or text.endswith("\n\n"):
        raise ValueError(f"{source}: must end with exactly one newline to embed unchanged")
    if "\t" in text:
        raise ValueError(f"{source}: has a tab, which a YAML block cannot hold as is")
    return [INDENT + line if line else "" for line in text.splitlines()]


def render(user_data: str, base: Path = HERE) -> str:
    """``user_data`` with every embedded file's content block replaced by the file."""
    lines = user_data.splitlines()
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = ENTRY.match(line)
        if not match or match.group(1) not in EMBEDDED:
            continue
        target = match.group(1)
        seen.add(target)
        while i < len(lines) and lines[i] != CONTENT:
            if ENTRY.match(lines[i]):
                raise ValueError(f"user-data: {target} has no {CONTENT.strip()!r} line")
            out.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"user-data: {target} has no {CONTENT.strip()!r} line")
        out.append(lines[i])
        i += 1
        skipped = []
        while i < len(lines) and (lines[i].startswith(INDENT) or not lines[i]):
            skipped.append(lines[i])
            i += 1
        blank_after = 0  # the blank lines that separate this entry from the next stay
        while skipped and not skipped[-1]:
            skipped.pop()
            blank_after += 1
        out += block(base / EMBEDDED[target]) + [""] * blank_after
    missing = sorted(set(EMBEDDED) - seen)
    if missing:
        raise ValueError(f"user-data: no write_files entry for {', '.join(missing)}")
    return "\n".join(out) + "\n"


def main() -> int:
    old = USER_DATA.read_text("utf-8")
    new = render(old)
    if new == old:
        print(f"{USER_DATA}: up to date")
    else:
        USER_DATA.write_text(new, "utf-8")
        print(f"{USER_DATA}: rewritten from {', '.join(sorted(set(EMBEDDED.values())))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
