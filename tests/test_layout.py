"""The architecture's rules, checked on the source: who may import whom."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DEPLOYABLES = ("edge", "hub", "signaling")
IO_MODULES = {
    "aiohttp",
    "aiomqtt",
    "paho",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "zeroconf",
    "asyncio",
    "subprocess",
    "requests",
    "urllib",
    "runtime",
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level names each module of ``package`` imports (absolute imports only)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("package", DEPLOYABLES)
def test_deployables_never_import_each_other(package: str) -> None:
    others = set(DEPLOYABLES) - {package} | {"xfv"}
    offenders = {f: sorted(n & others) for f, n in imported_packages(package).items() if n & others}
    assert offenders == {}


@pytest.mark.parametrize("package", ["contracts", "runtime"])
def test_lower_layers_import_no_deployable(package: str) -> None:
    banned = set(DEPLOYABLES) | {"xfv"} | ({"runtime"} if package == "contracts" else set())
    offenders = {f: sorted(n & banned) for f, n in imported_packages(package).items() if n & banned}
    assert offenders == {}


def test_contracts_do_no_io() -> None:
    offenders = {
        f: sorted(n & IO_MODULES)
        for f, n in imported_packages("contracts").items()
        if n & IO_MODULES
    }
    assert offenders == {}


def test_every_package_is_typed() -> None:
    for package in ("contracts", "runtime", *DEPLOYABLES, "xfv"):
        assert (ROOT / package / "py.typed").exists(), package


def test_topics_are_built_only_in_contracts() -> None:
    """No module outside contracts/ spells a topic itself."""
    offenders = [
        str(p.relative_to(ROOT))
        for package in ("runtime", *DEPLOYABLES, "xfv")
        for p in (ROOT / package).rglob("*.py")
        if '"xfv/v1' in p.read_text() or "'xfv/v1" in p.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("part", "banned"),
    [("edge", {"hub", "signaling"}), ("signaling", {"edge", "hub"}), ("hub", {"signaling"})],
)
def test_a_part_starts_without_importing_the_others(part: str, banned: set[str]) -> None:
    """``xfv edge run`` on a box loads no hub code: the hub's import alone took about a second
    of the box's start-up, before its first event went out. (``xfv hub`` loads the box's
    config model for ``provision-box``.)"""
    script = (
        "import sys\n"
        "from xfv.cli import main\n"
        f"assert main.get_command(None, {part!r}) is not None\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert part in loaded
    assert loaded & banned == set()
