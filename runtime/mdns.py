"""Zeroconf announcement and discovery (python-zeroconf, asyncio API).

``interfaces`` is ``"all"`` or a list of IPv4 addresses; tests and the demo use
``["127.0.0.1"]`` so multicast never leaves the machine.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Self

import ifaddr
from zeroconf import (
    BadTypeInNameException,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from runtime.resource import AsyncResource

log = logging.getLogger(__name__)

EDGE_SERVICE = "_xfv-edge._tcp.local."
HUB_SERVICE = "_xfv-hub._tcp.local."

Interfaces = Sequence[str] | Literal["all"]


def _zeroconf(interfaces: Interfaces) -> AsyncZeroconf:
    choice: list[str] | InterfaceChoice = (
        InterfaceChoice.All if interfaces == "all" else list(interfaces)
    )
    return AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)


def local_addresses(interfaces: Interfaces) -> list[str]:
    """Addresses to publish in an announcement: the given ones, or this host's IPv4s."""
    if interfaces != "all":
        return list(interfaces)
    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and not str(ip.ip).startswith("127.")
    ]
    return found or ["127.0.0.1"]


@dataclass(frozen=True, slots=True)
class Announced:
    """One service seen on the network."""

    service: str
    name: str
    addresses: list[str]
    port: int
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        return self.name.removesuffix("." + self.service)


class Announcer(AsyncResource):
    """Keep one service announced while open; unregister (goodbye packets) on close."""

    def __init__(
        self,
        service: str,
        instance: str,
        port: int,
        properties: Mapping[str, str],
        interfaces: Interfaces = "all",
    ) -> None:
        self.service = service
        addresses = local_addresses(interfaces)
        host = socket.gethostname().split(".")[0] or "xfv"
        self._info = ServiceInfo(
            service,
            f"{instance}.{service}",
            addresses=[socket.inet_aton(a) for a in addresses],
            port=port,
            properties=dict(properties),
            server=f"{instance}-{host}.local.",
        )
        self._interfaces = interfaces
        self._zc: AsyncZeroconf | None = None

    async def open(self) -> Self:
        if self._zc is None:
            self._zc = _zeroconf(self._interfaces)
            try:
                await self._zc.async_register_service(self._info, allow_name_change=True)
            except (NonUniqueNameException, BadTypeInNameException):
                await self.close()
                raise
            log.info("announced %s on port %d", self._info.name, self._info.port)
        return self

    async def close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is not None:
            try:
                await zc.async_unregister_service(self._info)
            finally:
                await zc.async_close()


async def browse(
    services: Sequence[str],
    seconds: float,
    interfaces: Interfaces = "all",
    stop_after_first: bool = False,
) -> list[Announced]:
    """Browse ``services`` for up to ``seconds`` and return what answered, resolved."""
    zc = _zeroconf(interfaces)
    names: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def changed(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put_nowait((service_type, name))

    browser = AsyncServiceBrowser(zc.zeroconf, list(services), handlers=[changed])
    found: dict[str, Announced] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                service_type, name = await asyncio.wait_for(names.get(), left)
            except TimeoutError:
                break
            info = AsyncServiceInfo(service_type, name)
            if not await info.async_request(zc.zeroconf, 3000):
                continue
            found[name] = Announced(
                service=service_type,
                name=name,
                addresses=info.parsed_addresses(IPVersion.V4Only),
                port=info.port or 0,
                properties={
                    k.decode(): (v or b"").decode("utf-8", "replace")
                    for k, v in info.properties.items()
                },
            )
            if stop_after_first:
                break
    finally:
        await browser.async_cancel()
        await zc.async_close()
    return sorted(found.values(), key=lambda a: (a.service, a.name))
