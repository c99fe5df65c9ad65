"""The rules that relate several values of a parameter file.

Server and endpoint address syntax, topology (roles), uniqueness of names, servers and endpoints,
what SQL authentication needs, and the names the templates give. Each rule reports to the Checker
and returns nothing or the value it settled; the keys themselves are declared in
mirrorkit.config.model.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from .checks import BAD, Checker, quote_yaml, short
from .model import SUBJECT_MAX, SYSNAME, PrivateKeyBackup, expand, principal_part
from .nodes import Node
from .references import SecretRef

__all__ = ["LOCAL_HOSTS", "parse_server", "check_endpoint_address", "listener_ip", "algorithm", "file_share",
           "private_key_backup", "check_listener_ip", "check_topology", "check_unique", "check_auth",
           "check_names"]

_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*"
                          r"[A-Za-z0-9_])?)*\.?\Z")
_INSTANCE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$#&]{0,15}\Z")
LOCAL_HOSTS = (".", "(local)")


def _check_host(text: str) -> str | None:
    """None if ``text`` is a host name or IP address peers can use, else why not."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        try:
            ipaddress.IPv6Address(text)
            return None
        except ValueError:
            return "is not an IPv6 address"
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
            return None
        except ValueError:
            return "contains ':'"
    if re.fullmatch(r"[0-9.]+", text):
        try:
            ipaddress.IPv4Address(text)
            return None
        except ValueError:
            return "is not a valid IPv4 address"
    if len(text) > 253 or not _HOSTNAME_RE.match(text):
        return "is not a host name or IP address"
    return None


def parse_server(ck: Checker, node: Node, path: str, value: str):
    """HOST,PORT | HOST\\INSTANCE | HOST\\INSTANCE,PORT → (host, instance_name, port) or BAD."""
    example = "'sql01.example.com,1433' or 'SQL01\\PROD'"
    text = value
    if re.match(r"(?i)(tcp|np|lpc|admin):", text):
        ck.add(path, "has a protocol prefix", f"write the server without it, e.g. server: {example}", node)
        return BAD
    if re.fullmatch(r"[^:,\\\[\]]+:[0-9]+", text):
        host, _, port_ = text.partition(":")
        ck.add(path, "separates host and port with ':'",
               f"SQL Server writes HOST,PORT with a comma: server: {quote_yaml(host.strip() + ',' + port_)}", node)
        return BAD
    hostpart, comma, portpart = text.rpartition(",") if "," in text else (text, "", "")
    hostpart, portpart = hostpart.strip(), portpart.strip()
    port = None
    if comma:
        if not re.fullmatch(r"[0-9]+", portpart):
            ck.add(path, f"port {short(portpart)} is not a number", f"write server: {example}", node)
            return BAD
        port = int(portpart)
        if not 1 <= port <= 65535:
            ck.add(path, f"port {port} is outside 1–65535", f"write server: {example}", node)
            return BAD
    host, backslash, inst = hostpart.partition("\\")
    host, inst = host.strip(), inst.strip()
    if backslash and not _INSTANCE_RE.match(inst):
        ck.add(path, f"instance name {short(inst)} is not a SQL Server instance name "
                     "(a letter or _, then up to 15 letters, digits, _ $ # &)",
               f"write server: {example}", node)
        return BAD
    if not comma and not backslash:
        ck.add(path, "has neither a port nor an instance name",
               f"write 'HOST,PORT' ({short(host + ',1433')} for the default instance) or 'HOST\\INSTANCE'",
               node)
        return BAD
    if not host:
        ck.add(path, "has no host", f"write server: {example}", node)
        return BAD
    if host.lower() not in LOCAL_HOSTS:
        why = _check_host(host)
        if why:
            ck.add(path, f"host {short(host)} {why}", f"write server: {example}", node)
            return BAD
    return host, (inst if backslash else None), port


def check_endpoint_address(ck: Checker, node: Node | None, path: str, value: str) -> Any:
    if "://" in value or re.fullmatch(r"[^:\[\]]+:[0-9]*", value) or re.fullmatch(r"\[.*\]:[0-9]*", value):
        ck.add(path, "holds more than the host", "write the host only (the port goes in endpoint_port), "
               "e.g. endpoint_address: sql01.example.com", node)
        return BAD
    why = _check_host(value)
    if why:
        ck.add(path, f"{short(value)} {why}", "write the host name or IP address peers connect to, "
               "e.g. endpoint_address: sql01.example.com", node)
        return BAD
    return value[1:-1] if value.startswith("[") else value


def check_topology(ck: Checker, recs: list[dict[str, Any]], topology: Any, topo_node: Node | None) -> Any:
    roles = [r["role"] for r in recs]
    names = [r["name"] if isinstance(r["name"], str) else f"instances[{r['index']}]" for r in recs]
    partners = [n for n, r in zip(names, roles) if r == "partner"]
    witnesses = [(rec, n) for rec, n, r in zip(recs, names, roles) if r == "witness"]
    replicas = [n for n, r in zip(names, roles) if r == "replica"]
    if replicas and (partners or witnesses):
        ck.add("instances", f"mixes replicas ({', '.join(replicas)}) with mirroring partners or a witness "
               f"({', '.join(partners + [n for _, n in witnesses])})",
               "use role: replica for every instance of an availability group, or partner/witness for "
               "database mirroring; the two never mix")
        return BAD
    inferred = "availability_group" if replicas else "mirroring"
    if isinstance(topology, str) and topology != inferred:
        if topology == "mirroring":
            hint = "write topology: availability_group, or give the instances role: partner / witness"
        else:
            hint = "write topology: mirroring, or give every instance role: replica"
        ck.add("topology", f"is {topology}, but the instances have the roles of {inferred.replace('_', ' ')}",
               hint, topo_node)
        return BAD
    if inferred == "mirroring":
        if len(witnesses) > 1:
            for rec, n in witnesses[1:]:
                ck.add(f"instances[{rec['index']}].role", f"is a second witness ({n}); mirroring has at most one",
                       "keep one witness; give the others role: partner or remove them", rec["nodes"].get("role"))
        if len(partners) != 2:
            if witnesses and len(partners) < 2:
                what = f"has a witness but {len(partners)} partner{'s' if len(partners) != 1 else ''}"
                what += f" ({', '.join(partners)})" if partners else ""
                what += "; a witness needs two partners"
            else:
                what = (f"has {len(partners)} mirroring partner{'s' if len(partners) != 1 else ''}"
                        + (f" ({', '.join(partners)})" if partners else "") + "; mirroring needs exactly two")
            ck.add("instances", what, "give exactly two instances role: partner (and at most one role: witness), "
                   "or use role: replica and topology: availability_group for more")
            return BAD
    else:
        if not 2 <= len(replicas) <= 9:
            ck.add("instances", f"has {len(replicas)} replica{'s' if len(replicas) != 1 else ''}; "
                   "an availability group has 2–9", "list between two and nine instances with role: replica")
            return BAD
    return inferred if topology is None else topology


def check_unique(ck: Checker, recs: list[dict[str, Any]], ep_port: Any) -> None:
    seen_names: dict[str, int] = {}
    seen_servers: dict[tuple, int] = {}
    seen_endpoints: dict[tuple, int] = {}
    tds_ports: dict[tuple, int] = {}
    for rec in recs:
        i, p = rec["index"], f"instances[{rec['index']}]"
        if isinstance(rec["name"], str):
            key = rec["name"].lower()
            if key in seen_names:
                ck.add(f"{p}.name", f"duplicate instance name {short(rec['name'])} "
                       f"(also instances[{seen_names[key]}]; names are compared case-insensitively)",
                       "give every instance its own @@SERVERNAME", rec["nodes"].get("name"))
            else:
                seen_names[key] = i
        if rec["parsed"] is not BAD:
            host, inst, port = rec["parsed"]
            skey = (host.lower(), (inst or "").lower(), port)
            if skey in seen_servers:
                rec["duplicate_server"] = True
                ck.add(f"{p}.server", f"duplicate server {short(rec['server'])} "
                       f"(also instances[{seen_servers[skey]}])",
                       "each instance needs its own server address", rec["nodes"].get("server"))
            else:
                seen_servers[skey] = i
            if port is not None:
                tds_ports.setdefault((host.lower().strip("[]"), port), i)
    for rec in recs:
        i, p = rec["index"], f"instances[{rec['index']}]"
        addr = rec["endpoint_address"]
        if addr is None and rec["parsed"] is not BAD:
            addr = rec["parsed"][0].strip("[]")
        port = rec["endpoint_port"] if rec["endpoint_port"] is not None else ep_port
        if (not isinstance(addr, str) or not isinstance(port, int) or addr.lower() in LOCAL_HOSTS
                or rec.get("duplicate_server")):
            continue
        ekey = (addr.lower(), port)
        where = f"{p}.endpoint_port" if rec["endpoint_port"] is not None else f"{p}.endpoint_address"
        node = rec["nodes"].get("endpoint_port") or rec["nodes"].get("endpoint_address") or rec["nodes"].get("server")
        if ekey in seen_endpoints:
            ck.add(where, f"endpoint {addr}:{port} is also the endpoint of instances[{seen_endpoints[ekey]}]",
                   "give each instance its own endpoint_address or endpoint_port", node)
        else:
            seen_endpoints[ekey] = i
        if ekey in tds_ports:
            ck.add(where, f"endpoint port {port} is the TDS port of instances[{tds_ports[ekey]}] on the same host",
                   "use another endpoint_port (5022 by convention)", node)


def check_auth(ck: Checker, recs: list[dict[str, Any]], base: dict[str, Any] | None) -> None:
    if base is None:
        return
    missing: dict[tuple[str, str], list[str]] = {}
    bad_users: list[str] = []
    for rec in recs:
        over = rec["connection"]
        if over is None:
            continue
        merged = {**base, **over}
        if merged.get("authentication", "sql") != "sql":
            continue
        where = f"instances[{rec['index']}].connection" if "authentication" in over else "connection"
        label = rec["name"] if isinstance(rec["name"], str) else f"instances[{rec['index']}]"
        for key in ("user", "password"):
            if merged.get(key) is None:
                missing.setdefault((where, key), []).append(label)
        user = merged.get("user")
        if isinstance(user, str) and "};" in user and "freetds" in str(merged.get("driver", "")).lower():
            # FreeTDS ends a {…} value at the first "};" (it does not read }} as one brace)
            at = f"instances[{rec['index']}].connection.user" if "user" in over else "connection.user"
            if at not in bad_users:
                bad_users.append(at)
                ck.add(at, "contains '};', which the FreeTDS ODBC driver cannot take in a connection string",
                       "use another login, or Microsoft's ODBC Driver 18 (connection.driver)")
    for (where, key), labels in missing.items():
        example = "mirrorkit_admin" if key == "user" else "env:MIRRORKIT_SQL_PASSWORD"
        used = f" (needed by {', '.join(labels)})" if where == "connection" else ""
        ck.add(f"{where}.{key}", f"is required with authentication: sql{used}",
               f"add {key}: {example}, or use authentication: windows")


def check_names(ck: Checker, names: list[str], cert_t: Any, subject_t: Any, login_t: Any, user_t: Any,
                 ct: dict[str, Node], lg: dict[str, Node]) -> None:
    def uniq(template: Any, path: str, placeholder: str, node: Node | None, transform=lambda s: s,
             what: str = "name") -> None:
        if not isinstance(template, str):
            return
        expanded: dict[str, str] = {}
        too_long, backslash = [], []
        for n in names:
            value = expand(template, placeholder, transform(n))
            if value.lower() in expanded:
                ck.add(path, f"gives the same {what} {short(value)} for {expanded[value.lower()]} and {n}",
                       f"include {{{placeholder}}} in the template so every instance gets its own", node)
                return
            expanded[value.lower()] = n
            if len(value) > SYSNAME:
                too_long.append(n)
            if what == "login" and "\\" in value:
                backslash.append(n)
        if too_long:
            ck.add(path, f"gives names longer than {SYSNAME} characters for {', '.join(too_long)}",
                   "shorten the template", node)
        if backslash:
            ck.add(path, f"gives login names with a backslash for {', '.join(backslash)}; "
                   "SQL Server logins cannot contain one", "remove the backslash from the template", node)

    uniq(cert_t, "certificate.name", "instance", ct.get("name"), what="certificate name")
    uniq(login_t, "logins.login", "peer", lg.get("login"), principal_part, what="login")
    uniq(user_t, "logins.user", "peer", lg.get("user"), principal_part, what="user")
    if isinstance(subject_t, str):
        long_ = [(n, len(expand(subject_t, "instance", n))) for n in names]
        long_ = [(n, k) for n, k in long_ if k > SUBJECT_MAX]
        if long_:
            worst = ", ".join(f"{n} ({k})" for n, k in long_)
            ck.add("certificate.subject", f"is longer than {SUBJECT_MAX} characters after expansion for {worst}",
                   "shorten the template, e.g. subject: '{instance} DBM endpoint' (SQL Server on Linux "
                   "enforces 64)", ct.get("subject"))


# ---------------------------------------------------------------------------------------------
# Endpoint and certificate sections
# ---------------------------------------------------------------------------------------------


def listener_ip(ck: Checker, value: Any, node: Node | None) -> Any:
    """``all`` or an IPv4 address, normalised."""
    if not isinstance(value, str):
        return value
    if value.lower() == "all":
        return "all"
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        ck.add("endpoint.listener_ip", f"{short(value)} is neither all nor an IPv4 address",
               "write listener_ip: all (or an IPv4 address such as 10.0.0.5)", node)
        return BAD


def algorithm(ck: Checker, value: Any, node: Node | None, encryption: Any) -> Any:
    """With encryption: disabled there is no algorithm (None); otherwise the one given or the default."""
    if encryption != "disabled":
        return value
    if node is None:
        return None
    if value is not BAD:
        ck.add("endpoint.algorithm", "is not allowed with encryption: disabled",
               "remove algorithm, or set encryption: required", node)
    return BAD


def file_share(ck: Checker, value: Any, transfer: Any, transfer_node: Node | None) -> Any:
    """transfer: file needs a file_share."""
    if transfer == "file" and value is None:
        ck.add("certificate.file_share", "is required with transfer: file",
               "add file_share: '\\\\fileserver\\certs' (a directory every instance reaches under that path), "
               "or use transfer: binary", transfer_node)
    return value


def private_key_backup(ck: Checker, values: dict[str, Any], nodes: dict[str, Node]) -> Any:
    """A directory and a password, or neither (no backup: None)."""
    directory, password = values["directory"], values["password"]
    if directory is not None and directory is not BAD and password is None:
        ck.add("certificate.private_key_backup.password", "is required with directory",
               "add password: env:MIRRORKIT_PVK_PASSWORD (a reference, never the password itself)",
               nodes.get("directory"))
    elif directory is None and password not in (None, BAD):
        ck.add("certificate.private_key_backup.directory",
               "is missing, so no backup would be taken although a password is given",
               "add directory: 'D:\\Backup\\certs' (a server-side directory), or remove private_key_backup",
               nodes.get("password"))
    if isinstance(directory, str) and isinstance(password, SecretRef):
        return PrivateKeyBackup(directory, password)
    if directory is not None or password is not None:
        return BAD
    return None


def check_listener_ip(ck: Checker, value: Any, recs: list[dict[str, Any]], node: Node | None) -> Any:
    """A listener_ip other than all must be the address peers use for every instance."""
    if not isinstance(value, str) or value == "all":
        return value
    for rec in recs:
        addr = rec["endpoint_address"] if rec["endpoint_address"] not in (None, BAD) else (
            rec["parsed"][0] if rec["parsed"] is not BAD else None)
        if addr is None:
            continue
        try:
            ip = ipaddress.ip_address(addr.strip("[]"))
        except ValueError:
            continue
        if str(ip) != value:
            ck.add("endpoint.listener_ip", f"is {value}, but peers reach instances[{rec['index']}] at {ip}",
                   "write listener_ip: all (the endpoint then listens on every address)", node)
            return BAD
    return value
