"""Acceptance: names are created exactly as written.

Instance names and every name template contain `]`, `'`, `;`, spaces and non-ASCII letters (the lab's
@@SERVERNAME is the instance name). After the full runbook (papermill, apply mode) the certificates,
logins, users, the endpoint and the subjects carry exactly the expanded names — read back through
sys.certificates, sys.server_principals, sys.database_principals and sys.database_mirroring_endpoints —
and the probe works in all six directions.

Two sets of instance names: `non_ascii` (the issue's example, `Pärtner ]A;'x`) and `ascii`, the same
names with ASCII letters only (still `]`, `'`, `;`, `[` and spaces), both with the same non-ASCII templates,
so that the kit's quoting is exercised even where the lab cannot host an instance name.
"""
from __future__ import annotations

import pytest

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAME_SETS = {"non_ascii": ("Pärtner ]A;'x", "Partnér [B] ;'y", "Wïtness ']; z"),
             "ascii": ("Partner ]A;'x", "Partner [B] ;'y", "Witness ']; z")}
ENDPOINT = "Mirr]or'ing ü;"
CERT = "{instance} c]ert"
SUBJECT = "{instance} sübject ';]"
LOGIN = "{peer} lö'g]in;"
USER = "{peer} ü]s'er; x"


def cert(n: str) -> str:
    return CERT.format(instance=n)


def login(n: str) -> str:
    return LOGIN.format(peer=n)


def user(n: str) -> str:
    return USER.format(peer=n)


class Named:
    def __init__(self, lab, runs, cert_dir, names):
        self.lab, self.runs, self.cert_dir = lab, runs, cert_dir
        self.p1, self.p2, self.w = names
        self.names = list(names)
        self.peers = {self.p1: [self.p2, self.w], self.p2: [self.p1, self.w], self.w: [self.p1, self.p2]}


@pytest.fixture(scope="module", params=list(NAME_SETS))
def named(request, tmp_path_factory):
    P1, P2, W = NAME_SETS[request.param]
    ROLES = {P1: "partner", P2: "partner", W: "witness"}
    tmp = tmp_path_factory.mktemp("names")
    lab = H.start_lab(tmp / "lab", P1, P2, W)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            param_file = H.write_parameter_file(tmp, H.parameter_values(
                lab, ROLES, environment="names", endpoint={"name": ENDPOINT},
                certificate={"name": CERT, "subject": SUBJECT}, logins={"login": LOGIN, "user": USER}))
            runs = H.full_runbook(param_file, partners=[P1, P2], witness=W, certificate_dir=tmp / "certs",
                                  out_dir=tmp / "out")
            yield Named(lab, runs, tmp / "certs", (P1, P2, W))
    finally:
        lab.stop_all()


def _require_runs(runs) -> None:
    failed = [r.describe() for r in runs if not r.ok]
    assert not failed, "\n\n".join(failed)


def test_runs_succeed(named):
    _require_runs(named.runs)
    for run in named.runs:
        assert run.records["seal"][-1]["status"] == "ok"


@pytest.mark.parametrize("which", ["p1", "p2", "w"])
def test_names_are_created_exactly_as_written(named, which):
    import json
    _require_runs(named.runs)
    name = getattr(named, which)
    h = named.lab[name]
    assert h.sql("SELECT @@SERVERNAME")[0][0] == name
    state = H.catalog(h)
    peers = named.peers[name]
    assert sorted((c["name"], c["owner"]) for c in state["certificates"]) == sorted(
        [(cert(name), "dbo")] + [(cert(p), user(p)) for p in peers])
    subjects = {c["name"]: c["subject"] for c in state["certificates"]}
    for n in [name] + peers:
        assert subjects[cert(n)] == SUBJECT.format(instance=n)
    assert sorted(n for n, _, _ in state["logins"]) == sorted(["sa"] + [login(p) for p in peers])
    assert sorted(state["users"]) == sorted((user(p), "SQL_USER", login(p)) for p in peers)
    assert sorted(state["permissions"]) == sorted((ENDPOINT, "CONNECT", "GRANT", login(p)) for p in peers)
    [ep] = state["endpoints"]
    assert (ep["name"], ep["certificate"], ep["state"], ep["auth"]) == (ENDPOINT, cert(name), "STARTED", "CERTIFICATE")
    # exact names, also through the functions a DBA would use
    assert h.sql("SELECT CERT_ID(?)", cert(name))[0][0] is not None
    assert all(h.sql("SELECT SUSER_ID(?)", login(p))[0][0] is not None for p in peers)
    # the artifact (file name escaped, contents exact)
    metas = [json.loads(p.read_text(encoding="utf-8")) for p in named.cert_dir.glob("*.json")]
    [meta] = [m for m in metas if m["instance"] == name]
    assert meta["certificate_name"] == cert(name)
    assert meta["subject"] == SUBJECT.format(instance=name)


def test_probe_succeeds_in_all_six_directions(named):
    _require_runs(named.runs)
    P1, P2, W = named.p1, named.p2, named.w
    pairs = [(P1, P2, "PARTNER"), (P2, P1, "PARTNER"), (P1, W, "WITNESS"), (P2, W, "WITNESS"),
             (W, P1, "PARTNER"), (W, P2, "PARTNER")]
    assert H.probe_failures(named.lab, pairs) == []
