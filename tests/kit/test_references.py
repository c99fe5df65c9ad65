"""One parser of secret references: what the parameter file validates is what credentials resolves."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirrorkit.access import credentials
from mirrorkit.access.credentials import SecretError, resolve
from mirrorkit.config import parameters as params
from mirrorkit.config.references import SecretRef, parse_secret_ref


class FakeKeyring(types.ModuleType):
    """A keyring module that records what it was asked for."""

    def __init__(self, passwords: dict[tuple[str, str], str]):
        super().__init__("keyring")
        self.passwords = passwords
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service: str, name: str):
        self.asked.append((service, name))
        return self.passwords.get((service, name))


@pytest.fixture
def fake_keyring(monkeypatch):
    ring = FakeKeyring({("a/b", "c"): "s3cret-abc", ("mirrorkit", "sql01"): "s3cret-sql01"})
    monkeypatch.setitem(sys.modules, "keyring", ring)
    return ring


def test_parameters_reexport_the_one_parser():
    assert params.parse_secret_ref is parse_secret_ref and params.SecretRef is SecretRef
    assert not hasattr(credentials, "is_reference") and not hasattr(credentials, "REFERENCE_KINDS")


def test_keyring_splits_service_and_name_at_the_last_slash(fake_keyring):
    ref = parse_secret_ref("keyring:a/b/c")
    assert (ref.service, ref.username) == ("a/b", "c")
    assert resolve("keyring:a/b/c", "label").reveal() == "s3cret-abc"
    assert resolve(ref, "label").reveal() == "s3cret-abc"
    assert fake_keyring.asked == [("a/b", "c"), ("a/b", "c")]


def test_resolve_takes_the_validated_reference(fake_keyring):
    env = params.from_values({
        "environment": "t",
        "instances": [{"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner"},
                      {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner"}],
        "connection": {"authentication": "sql", "user": "u", "password": "keyring:mirrorkit/sql01"},
    })
    assert resolve(env.connection.password, "connection.password").reveal() == "s3cret-sql01"


def test_keyring_without_a_password_names_service_and_name(fake_keyring):
    with pytest.raises(SecretError, match=r"service 'x/y', name 'z'"):
        resolve("keyring:x/y/z", "label")


@pytest.mark.parametrize("text", ["plain-password", "ENV:X", "env:1X", "keyring:x", "keyring:/x", "file:"])
def test_resolve_refuses_what_validation_refuses(text):
    with pytest.raises(ValueError):
        parse_secret_ref(text)
    with pytest.raises(SecretError) as info:
        resolve(text, "the label")
    assert str(info.value).startswith("the label: ")
    if len(text) > 6:
        assert text not in str(info.value)          # never echoed


_PART = st.text(alphabet="abcAB_-./:9 é", min_size=0, max_size=8)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["env", "file", "keyring", "prompt", "Env", "vault", ""]),
       parts=st.lists(_PART, min_size=1, max_size=4))
def test_validation_and_resolution_agree(kind, parts):
    """Whatever validates resolves by the same reading; whatever does not validate does not resolve."""
    text = f"{kind}:" + "/".join(parts)
    ring = FakeKeyring({})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "keyring", ring)
        try:
            ref = parse_secret_ref(text)
        except ValueError:
            with pytest.raises(SecretError):
                resolve(text, "label")
            return
        if ref.kind == "env":
            mp.setenv(ref.target, "value-from-env")
            assert resolve(text, "label").reveal() == "value-from-env"
        elif ref.kind == "keyring":
            ring.passwords[(ref.service, ref.username)] = "value-from-keyring"
            assert resolve(text, "label").reveal() == "value-from-keyring"
            assert ring.asked == [(ref.service, ref.username)]
            assert ref.service + "/" + ref.username == ref.target
        elif ref.kind == "prompt":
            with pytest.raises(SecretError, match="prompt: works only"):
                resolve(text, "label")
        else:
            assert ref.kind == "file"
            with pytest.raises(SecretError, match=r"label: (file .* does not exist|cannot read)"):
                resolve(text, "label", base_dir=Path("/nonexistent-mirrorkit-test"))
