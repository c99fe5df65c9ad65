"""What the lab reads from a parameter file: the instances it must serve.

The full parameter schema (validated by mirrorkit.params) is the runbook's; the lab
only needs each instance's name and `server` address, checked here with errors that
name the file and the key.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml


class LabConfigError(Exception):
    pass


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    host: str
    port: int

    @property
    def server(self) -> str:
        return f"{self.host},{self.port}"


def parse_server(value: object, where: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise LabConfigError(f"{where}: expected a string like '127.0.0.11,1433', got {value!r}")
    host, sep, port = value.partition(",")
    host = host.strip()
    if not sep:
        raise LabConfigError(f"{where}: {value!r} has no port; write it as 'HOST,PORT', e.g. '127.0.0.11,1433'")
    try:
        port_no = int(port.strip())
    except ValueError:
        raise LabConfigError(f"{where}: port {port.strip()!r} is not a number") from None
    if not 1 <= port_no <= 65535:
        raise LabConfigError(f"{where}: port {port_no} is outside 1-65535")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise LabConfigError(f"{where}: the lab serves loopback addresses only (127.0.0.0/8); "
                                 f"{host!r} is not one") from None
        addr = ipaddress.ip_address("127.0.0.1")
    if not addr.is_loopback:
        raise LabConfigError(f"{where}: the lab serves loopback addresses only (127.0.0.0/8); {host} is not one")
    return str(addr), port_no


def load_instances(path: Path) -> list[InstanceSpec]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabConfigError(f"{path}: no such parameter file") from None
    except yaml.YAMLError as exc:
        raise LabConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("instances"), list) or not data["instances"]:
        raise LabConfigError(f"{path}: key 'instances' must be a non-empty list of instances")
    out: list[InstanceSpec] = []
    seen_names: set[str] = set()
    seen_addr: set[tuple[str, int]] = set()
    for i, item in enumerate(data["instances"]):
        where = f"{path}: instances[{i}]"
        if not isinstance(item, dict):
            raise LabConfigError(f"{where}: expected a mapping with 'name' and 'server'")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise LabConfigError(f"{where}.name: expected the instance name as a string")
        if name.lower() in seen_names:
            raise LabConfigError(f"{where}.name: duplicate instance name {name!r}")
        host, port = parse_server(item.get("server"), f"{where}.server")
        if (host, port) in seen_addr:
            raise LabConfigError(f"{where}.server: {host},{port} is already used by another instance")
        seen_names.add(name.lower())
        seen_addr.add((host, port))
        out.append(InstanceSpec(name, host, port))
    return out
