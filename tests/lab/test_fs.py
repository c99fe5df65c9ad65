"""Tests for mirrorkit_lab.fs: the confined per-instance server file system."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirrorkit_lab import fs as fsmod
from mirrorkit_lab.fs import FileExists, PathNotAllowed, ServerFileError, ServerFileNotFound, ServerFileSystem

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sfs(tmp_path) -> ServerFileSystem:
    return ServerFileSystem(tmp_path / "inst")


# ---- mapping -----------------------------------------------------------------------------------

@pytest.mark.parametrize("server_path, expected", [
    (r"C:\a\b.cer", "C/a/b.cer"),
    ("c:/a/b.cer", "C/a/b.cer"),
    (r"c:\a/b.cer", "C/a/b.cer"),
    (r"D:\certs\\HOST_A_cert.cer", "D/certs/HOST_A_cert.cer"),
    (r"C:\HOST_A_cert.cer", "C/HOST_A_cert.cer"),
    (r"C:\a\.\b\..\c.cer", "C/a/c.cer"),
    (r"C:\Program Files\My Certs\Ab.CER", "C/Program Files/My Certs/Ab.CER"),  # case kept
    ("/var/opt/mssql/data/x.cer", "var/opt/mssql/data/x.cer"),
    (r"\var\opt\x.cer", "var/opt/x.cer"),
    ("/tmp//x.cer", "tmp/x.cer"),
    (r"\\host\share\x", "UNC/host/share/x"),
    ("//host/share/dir/x.cer", "UNC/host/share/dir/x.cer"),
    (r"\\Host\Share\a\..\x", "UNC/Host/Share/x"),
    ("x.cer", "var/opt/mssql/data/x.cer"),
    (r"sub\x.cer", "var/opt/mssql/data/sub/x.cer"),
    (r"sub\..\x.cer", "var/opt/mssql/data/x.cer"),
    ("./x.cer", "var/opt/mssql/data/x.cer"),
    ("..cer", "var/opt/mssql/data/..cer"),
    ("ünïcödé.cer", "var/opt/mssql/data/ünïcödé.cer"),
])
def test_mapping(sfs, server_path, expected):
    assert sfs.resolve(server_path) == sfs.root / expected


def test_windows_default_dir(tmp_path):
    sfs = ServerFileSystem(tmp_path / "win", default_dir=r"C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\DATA")
    assert sfs.resolve("a.cer") == sfs.root / "C/Program Files/Microsoft SQL Server/MSSQL15.MSSQLSERVER/MSSQL/DATA/a.cer"
    with pytest.raises(ValueError):
        ServerFileSystem(tmp_path / "bad", default_dir="relative/dir")


def test_root_is_created_and_canonical(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    sfs = ServerFileSystem(tmp_path / "link" / "inst")  # a symlinked state dir is fine
    assert sfs.root == (tmp_path / "real" / "inst").resolve() and sfs.root.is_dir()
    sfs.write_new("a.cer", b"x")
    assert sfs.read_bytes("a.cer") == b"x"


# ---- escapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("server_path", [
    r"C:\..\..\etc\passwd",
    r"C:\a\..\..\x",
    "/../../x",
    "/..",
    r"..\x",
    "../../../../etc/passwd",
    r"sub\..\..\x",
    r"\\host\share\..\x",
    r"\\host\..\x",
    r"\\..\share\x",
    r"\\host",
    r"\\host\\",
    r"\\?\C:\x",
    r"\\.\PhysicalDrive0",
    "a\x00b",
    "\x00",
    "",
    "   ",
    "a\nb.cer",
    "C:x.cer",
    "C:",
    r"C:\certs\a.cer:stream",
    "CON",
    r"C:\dir\nul.cer",
    "/var/LPT1",
    "com1.txt ",
    r"\\CON\share\x",
    "\udc80\ud800",
])
def test_escapes_and_invalid_paths_refused(sfs, server_path):
    with pytest.raises(PathNotAllowed) as info:
        sfs.resolve(server_path)
    assert "\x00" not in str(info.value)
    for op in (lambda: sfs.read_bytes(server_path), lambda: sfs.write_new(server_path, b"x"),
               lambda: sfs.exists(server_path)):
        with pytest.raises(PathNotAllowed):
            op()
    assert not any(p.is_file() for p in sfs.root.rglob("*"))


def test_non_string_path(sfs):
    with pytest.raises(PathNotAllowed):
        sfs.resolve(b"/x")  # type: ignore[arg-type]


@pytest.fixture
def planted(sfs, tmp_path):
    """root/C/evil -> an outside directory, root/C/inner -> a directory inside root, root/C/f -> outside file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside secret")
    (sfs.root / "C" / "real").mkdir(parents=True)
    (sfs.root / "C" / "evil").symlink_to(outside)
    (sfs.root / "C" / "inner").symlink_to(sfs.root / "C" / "real")
    (sfs.root / "C" / "f").symlink_to(outside / "secret")
    return outside


@pytest.mark.parametrize("server_path", [
    r"C:\evil\secret", r"C:\evil\new.cer", r"C:\evil\sub\new.cer", r"C:\inner\x.cer", r"C:\f", r"C:\evil",
])
def test_symlinks_are_never_followed(sfs, planted, server_path):
    with pytest.raises(PathNotAllowed, match="symbolic link"):
        sfs.resolve(server_path)
    with pytest.raises(PathNotAllowed):
        sfs.read_bytes(server_path)
    with pytest.raises(PathNotAllowed):
        sfs.write_new(server_path, b"pwned")
    with pytest.raises(PathNotAllowed):
        sfs.exists(server_path)
    assert sorted(p.name for p in planted.iterdir()) == ["secret"]
    assert (planted / "secret").read_bytes() == b"outside secret"


def test_symlink_swapped_in_after_resolve_is_not_followed(sfs, tmp_path):
    # resolve() checks with lstat, but the I/O walks with O_NOFOLLOW descriptors, so a directory
    # replaced by a symlink after the check is still refused.
    outside = tmp_path / "outside2"
    outside.mkdir()
    sfs.write_new(r"C:\d\a.cer", b"a")
    sfs.resolve(r"C:\d\b.cer")
    (sfs.root / "C" / "d" / "a.cer").unlink()
    (sfs.root / "C" / "d").rmdir()
    (sfs.root / "C" / "d").symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        sfs.write_new(r"C:\d\b.cer", b"b")
    assert list(outside.iterdir()) == []


# ---- read / write ------------------------------------------------------------------------------

def test_write_read_exists(sfs):
    assert not sfs.exists(r"C:\certs\a.cer")
    sfs.write_new(r"C:\certs\a.cer", b"\x30\x82cert")
    assert (sfs.root / "C" / "certs" / "a.cer").read_bytes() == b"\x30\x82cert"
    assert sfs.read_bytes("c:/certs/a.cer") == b"\x30\x82cert"
    assert sfs.exists(r"C:\certs\a.cer") and sfs.exists(r"C:\certs")
    assert not sfs.exists(r"C:\certs\a.cer\below") and not sfs.exists(r"Q:\nothing\here")
    assert os.stat(sfs.resolve(r"C:\certs\a.cer")).st_mode & 0o777 == 0o600
    sfs.write_new("empty.cer", b"")
    assert sfs.read_bytes("/var/opt/mssql/data/empty.cer") == b""


def test_read_missing(sfs):
    with pytest.raises(ServerFileNotFound) as info:
        sfs.read_bytes(r"C:\certs\missing.cer")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ServerFileError)
    assert r"C:\certs\missing.cer" in str(info.value)
    assert info.value.server_path == r"C:\certs\missing.cer"


def test_read_directory_and_directory_names(sfs):
    sfs.write_new(r"C:\dir\a.cer", b"a")
    with pytest.raises(ServerFileError, match="not a regular file"):
        sfs.read_bytes(r"C:\dir")
    for dir_like in ("C:\\", r"C:\dir" + "\\", r"\\h\s", "/", r"C:\dir\.."):
        with pytest.raises(PathNotAllowed, match="directory"):
            sfs.write_new(dir_like, b"x")
    with pytest.raises(ServerFileError, match="not a directory"):
        sfs.read_bytes(r"C:\dir\a.cer\x")
    with pytest.raises(ServerFileError):
        sfs.write_new(r"C:\dir\a.cer\x", b"x")


def test_fifo_does_not_hang(sfs):
    (sfs.root / "C").mkdir()
    os.mkfifo(sfs.root / "C" / "pipe")
    with pytest.raises(ServerFileError, match="not a regular file"):
        sfs.read_bytes(r"C:\pipe")


def test_never_overwrites(sfs):
    sfs.write_new(r"C:\HOST_A_cert.cer", b"old content")
    with pytest.raises(FileExists) as info:
        sfs.write_new(r"c:/HOST_A_cert.cer", b"new content")
    assert isinstance(info.value, FileExistsError)
    assert "HOST_A_cert.cer" in str(info.value)
    assert sfs.read_bytes(r"C:\HOST_A_cert.cer") == b"old content"
    assert os.listdir(sfs.root / "C") == ["HOST_A_cert.cer"]  # no temp file left behind
    (sfs.root / "C" / "adir").mkdir()
    with pytest.raises(FileExists):
        sfs.write_new(r"C:\adir", b"x")


def test_failed_write_leaves_nothing(sfs, monkeypatch):
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data[:10]))

    monkeypatch.setattr(fsmod.os, "write", failing_write)
    with pytest.raises(OSError):
        sfs.write_new(r"C:\big.cer", b"x" * 1000)
    monkeypatch.undo()
    assert not sfs.exists(r"C:\big.cer")
    assert os.listdir(sfs.root / "C") == []


def test_killed_mid_write_leaves_no_target(tmp_path):
    # A child process writes half the data into the temp file and is then SIGKILLed: the target
    # name must not exist (only a temp file may remain), and an existing file is untouched.
    root = tmp_path / "inst"
    sfs = ServerFileSystem(root)
    sfs.write_new(r"C:\certs\old.cer", b"old")
    script = textwrap.dedent(f"""
        import os, sys, time
        from mirrorkit_lab import fs
        real_write = os.write
        def slow_write(fd, data):
            n = real_write(fd, bytes(data[:len(data) // 2]))
            sys.stdout.write("partial\\n"); sys.stdout.flush()
            time.sleep(60)
            return n
        fs.os.write = slow_write
        s = fs.ServerFileSystem({str(root)!r})
        s.write_new(sys.argv[1], b"y" * 100000)
    """)
    for target in (r"C:\certs\new.cer", r"C:\certs\old.cer"):
        env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
        child = subprocess.Popen([sys.executable, "-c", script, target], stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout.readline() == b"partial\n"
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
            child.stdout.close()
        names = os.listdir(root / "C" / "certs")
        assert "new.cer" not in names
        assert sfs.read_bytes(r"C:\certs\old.cer") == b"old"
        assert any(n.startswith(".mk-tmp-") for n in names)  # the torn data stayed in the temp file


def test_copy_between_instances(tmp_path):
    a = ServerFileSystem(tmp_path / "a")
    b = ServerFileSystem(tmp_path / "b")
    a.write_new(r"C:\HOST_A_cert.cer", b"cert A")
    b.copy(a, r"C:\HOST_A_cert.cer", r"C:\HOST_A_cert.cer")
    assert b.read_bytes(r"C:\HOST_A_cert.cer") == b"cert A"
    b.copy(a, r"C:\HOST_A_cert.cer", "/var/opt/mssql/data/peer.cer")
    assert b.read_bytes("peer.cer") == b"cert A"
    with pytest.raises(FileExists):
        b.copy(a, r"C:\HOST_A_cert.cer", r"C:\HOST_A_cert.cer")
    with pytest.raises(ServerFileNotFound):
        b.copy(a, r"C:\missing.cer", r"C:\x.cer")
    assert not b.exists(r"C:\x.cer")


def test_display(sfs):
    assert sfs.display(r"C:\certs\a.cer") == r"C:\certs\a.cer"
    assert sfs.display("a\x00b") == "a\\x00b"


# ---- property ----------------------------------------------------------------------------------

_TRICKY = st.lists(st.sampled_from(["/", "\\", "\\\\", "..", ".", "C:", "c:", "x", "evil", "CON", "a.cer",
                                    ":", "?", " ", "\x00", "UNC", "host", "share", "\udc80"]),
                   max_size=12).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(st.text(max_size=60), _TRICKY))
@example(path=r"C:\..\..\etc\passwd")
@example(path=r"\\..\..\x")
@example(path=r"C:\evil\x")
def test_resolve_stays_inside_root(tmp_path, path):
    sfs = ServerFileSystem(tmp_path / "prop")
    if not (sfs.root / "C" / "evil").is_symlink():
        (sfs.root / "C").mkdir(exist_ok=True)
        (sfs.root / "C" / "evil").symlink_to("/tmp")
        (sfs.root / "evil").symlink_to("/")
    try:
        result = sfs.resolve(path)
    except PathNotAllowed:
        return
    assert isinstance(result, Path)
    rel = result.relative_to(sfs.root)                       # raises if outside root
    assert os.path.normpath(result) == str(result)           # nothing left to normalise
    assert ".." not in rel.parts and "." not in rel.parts
    real = os.path.realpath(result)
    assert real == str(result) or not os.path.lexists(result)  # no symlink on the way
    assert os.path.commonpath([real, str(sfs.root)]) == str(sfs.root)


def test_concurrent_writers_one_wins(tmp_path):
    import threading
    sfs = ServerFileSystem(tmp_path / "race")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(i: int):
        barrier.wait()
        try:
            sfs.write_new(r"C:\race.cer", f"writer {i}".encode() * 1000)
            results.append("ok")
        except FileExists:
            results.append("exists")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results.count("ok") == 1 and results.count("exists") == 7
    content = sfs.read_bytes(r"C:\race.cer")
    assert content == content[:len(content) // 1000] * 1000  # one writer's complete data
    assert os.listdir(sfs.root / "C") == ["race.cer"]
    time.sleep(0)


def test_unc_paths_reach_the_share_common_to_a_labs_instances(tmp_path):
    shared = tmp_path / "unc"
    a = ServerFileSystem(tmp_path / "a", shared_unc=shared)
    b = ServerFileSystem(tmp_path / "b", shared_unc=shared)
    a.write_new(r"\\fileserver\certs\A.cer", b"public")
    assert b.read_bytes("//fileserver/certs/A.cer") == b"public"
    assert a.resolve(r"\\fileserver\certs\A.cer") == shared.resolve() / "fileserver" / "certs" / "A.cer"
    with pytest.raises(FileExists):
        b.write_new(r"\\fileserver\certs\A.cer", b"other")
    with pytest.raises(PathNotAllowed):
        a.resolve(r"\\fileserver\certs\..\..\..\escape")
    # drive paths stay private to each instance
    a.write_new(r"C:\x.cer", b"a")
    assert not b.exists(r"C:\x.cer")
