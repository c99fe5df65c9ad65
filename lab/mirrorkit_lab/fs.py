"""Each lab instance's confined "server file system".

T-SQL names files on the server (BACKUP CERTIFICATE c TO FILE = 'C:\\certs\\a.cer',
CREATE CERTIFICATE c FROM FILE = '/var/opt/mssql/data/a.cer'). In the lab every instance has its
own root directory and every server path maps inside it:

    C:\\a\\b.cer, c:/a/b.cer        -> root/C/a/b.cer      (drive letter upper-cased)
    /var/opt/mssql/data/x.cer     -> root/var/opt/mssql/data/x.cer
    \\\\host\\share\\x               -> root/UNC/host/share/x
    x.cer, sub\\x.cer              -> root/<default_dir>/x.cer  (SQL Server puts a bare file name
                                     in the instance's default data folder)

Nothing may reach outside root: '..' may not climb above the drive / POSIX root / UNC share (or,
for relative paths, above default_dir); NUL and control characters, device names (CON, NUL,
COM1, ...), drive-relative (C:x) and device-namespace (\\\\?\\, \\\\.\\) paths are refused; and
no symlink is ever followed inside the tree. File access walks the tree one component at a
time with O_NOFOLLOW directory descriptors, so a symlink planted between check and use cannot
redirect it either. Linux only (dir_fd support).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path

__all__ = ["ServerFileSystem", "ServerFileError", "PathNotAllowed", "ServerFileNotFound", "FileExists"]


class ServerFileError(Exception):
    """A server-side file operation failed. server_path is the path as the user wrote it."""

    def __init__(self, message: str, server_path: str | None = None):
        super().__init__(message)
        self.server_path = server_path


class PathNotAllowed(ServerFileError, ValueError):
    """The path is invalid or would leave the instance's root."""


class ServerFileNotFound(ServerFileError, FileNotFoundError):
    """No such file on the server."""


class FileExists(ServerFileError, FileExistsError):
    """The target exists; server writes never overwrite (SQL Server Msg 15240)."""


_SEPARATORS = re.compile(r"[\\/]+")
_DRIVE = re.compile(r"^([A-Za-z]):(.*)$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f]")
# Windows reserved device names, also with an extension ("nul.cer") or trailing dots/spaces.
_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"} | {
    f"{kind}{n}" for kind in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ServerFileSystem:
    def __init__(self, root: Path, default_dir: str = "/var/opt/mssql/data", shared_unc: Path | None = None):
        os.makedirs(root, exist_ok=True)
        # realpath once, so a symlinked state directory is fine; below root nothing is followed.
        self.root = Path(os.path.realpath(root))
        # UNC paths (\\host\share\…) reach one directory shared by every instance of a lab, as a
        # file server would; without it they stay inside this instance's root.
        self.shared_unc = None
        if shared_unc is not None:
            os.makedirs(shared_unc, exist_ok=True)
            self.shared_unc = Path(os.path.realpath(shared_unc))
        self.default_dir = default_dir
        mapped = self._absolute_parts(default_dir) if default_dir else None
        if mapped is None:
            raise ValueError(f"default_dir must be an absolute server path: {default_dir!r}")
        self._default_parts = mapped[0]

    # ---- mapping ------------------------------------------------------------------------------

    def _refuse(self, path: str, why: str) -> PathNotAllowed:
        return PathNotAllowed(f"The server path '{self.display(path)}' is not allowed: {why}.", path)

    def _absolute_parts(self, path: str) -> tuple[list[str], int] | None:
        """(components below root, how many of them are the fixed base: drive, UNC host+share)
        for an absolute server path; None if the path is relative."""
        if path[:2] in ("\\\\", "//", "\\/", "/\\"):
            rest = _SEPARATORS.split(path)[1:]             # '', host, share, ...
            if not rest or rest[0] in ("?", "."):
                raise self._refuse(path, "device and extended-length paths (\\\\?\\, \\\\.\\) are not supported")
            if len(rest) < 2 or not rest[0] or not rest[1] or {rest[0], rest[1]} & {".", ".."}:
                raise self._refuse(path, "a UNC path needs \\\\host\\share")
            share = self._normalise(path, ["UNC"], rest[:2])   # checks host and share names too
            return self._normalise(path, share, rest[2:]), 3
        drive = _DRIVE.match(path)
        if drive:
            letter, rest = drive.groups()
            if not rest or rest[0] not in "\\/":
                raise self._refuse(path, "drive-relative paths (C:name) are not supported; use C:\\name")
            return self._normalise(path, [letter.upper()], _SEPARATORS.split(rest)), 1
        if path[0] in "\\/":
            return self._normalise(path, [], _SEPARATORS.split(path)), 0
        return None

    def _normalise(self, path: str, base: list[str], components: list[str]) -> list[str]:
        """base + components with '.' and empty parts dropped and '..' applied, never above base."""
        out = list(base)
        for comp in components:
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(out) == len(base):
                    raise self._refuse(path, "'..' climbs above the root of the path")
                out.pop()
                continue
            if ":" in comp:
                raise self._refuse(path, f"':' is not allowed in a file name ({comp!r})")
            if comp.rstrip(" .").split(".")[0].rstrip(" ").upper() in _DEVICES:
                raise self._refuse(path, f"'{comp}' is a device name")
            out.append(comp)
        return out

    def _parts(self, path: str) -> tuple[list[str], int]:
        """Validated components of path below root (never '..', '.', '' or a separator), and the
        length of the base they may not climb above."""
        if not isinstance(path, str):
            raise PathNotAllowed(f"The server path must be a string, not {type(path).__name__}.")
        if not path or not path.strip():
            raise self._refuse(path, "the path is empty")
        if "\x00" in path:
            raise self._refuse(path, "it contains a NUL character")
        if _CONTROL.search(path):
            raise self._refuse(path, "it contains a control character")
        try:
            os.fsencode(path)
        except UnicodeEncodeError:
            raise self._refuse(path, "it cannot be represented as a file name") from None
        mapped = self._absolute_parts(path)
        if mapped is None:                                 # relative: under the default data folder
            base = self._default_parts
            mapped = self._normalise(path, base, _SEPARATORS.split(path)), len(base)
        return mapped

    def _anchor(self, parts: list[str]) -> tuple[Path, list[str]]:
        """The directory a mapped path hangs from, and its components below it."""
        if self.shared_unc is not None and parts and parts[0] == "UNC":
            return self.shared_unc, parts[1:]
        return self.root, parts

    def resolve(self, path: str) -> Path:
        """The host path for a server path (inside root), or PathNotAllowed."""
        parts, _base = self._parts(path)
        root, parts = self._anchor(parts)
        target = root.joinpath(*parts)
        # Belt and braces: the construction above cannot leave root.
        if os.path.commonpath([root, target]) != str(root):
            raise self._refuse(path, "it leaves the instance's file system")
        current = root
        for comp in parts:                                # refuse any existing symlink on the way
            current = current / comp
            try:
                st = os.lstat(current)
            except OSError:                               # missing (or not a directory above): stop
                break
            if stat.S_ISLNK(st.st_mode):
                raise self._refuse(path, f"'{comp}' is a symbolic link")
        return target

    def display(self, path: str) -> str:
        """The path as the user wrote it (for messages); control characters shown as \\xNN."""
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)

    # ---- descriptor walk ----------------------------------------------------------------------

    def _open_parent(self, path: str, parts: list[str], create: bool) -> int:
        """An O_NOFOLLOW descriptor of the directory holding parts[-1]; caller closes it."""
        root, parts = self._anchor(parts)
        fd = os.open(root, _NOFOLLOW_DIR)
        try:
            for comp in parts[:-1]:
                if create:
                    try:
                        os.mkdir(comp, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    nxt = os.open(comp, _NOFOLLOW_DIR, dir_fd=fd)
                except OSError as exc:
                    raise self._os_error(path, exc, comp) from None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _os_error(self, path: str, exc: OSError, comp: str | None = None) -> ServerFileError:
        shown = self.display(path)
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and comp and self._is_link(path)):
            return self._refuse(path, f"'{comp}' is a symbolic link" if comp else "it is a symbolic link")
        if exc.errno == errno.ENOENT:
            return ServerFileNotFound(f"Cannot find the file '{shown}'.", path)
        if exc.errno == errno.EEXIST:
            return FileExists(f"Cannot write into file '{shown}': the file already exists.", path)
        if exc.errno == errno.ENOTDIR:
            return ServerFileError(f"Cannot access '{shown}': a part of the path is not a directory.", path)
        if exc.errno == errno.EISDIR:
            return ServerFileError(f"Cannot access '{shown}': it is a directory.", path)
        return ServerFileError(f"Cannot access '{shown}': {exc.strerror or exc}.", path)

    def _is_link(self, path: str) -> bool:
        try:
            self.resolve(path)
        except PathNotAllowed:
            return True
        return False

    # ---- operations ---------------------------------------------------------------------------

    def _file_parts(self, path: str) -> list[str]:
        parts, base = self._parts(path)
        if len(parts) <= base or path[-1] in "\\/" or _SEPARATORS.split(path)[-1] in (".", ".."):
            raise self._refuse(path, "it names a directory, not a file")
        return parts

    def exists(self, path: str) -> bool:
        """True if something (file or directory) is at path. Disallowed paths raise PathNotAllowed."""
        parts, _base = self._parts(path)
        if not parts:
            return True                                   # the root itself
        try:
            fd = self._open_parent(path, parts, create=False)
        except ServerFileNotFound:
            return False
        except ServerFileError as exc:
            if isinstance(exc, PathNotAllowed):
                raise
            return False
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG):
                return False
            raise self._os_error(path, exc) from None
        finally:
            os.close(fd)
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse(path, f"'{parts[-1]}' is a symbolic link")
        return True

    def read_bytes(self, path: str) -> bytes:
        parts = self._file_parts(path)
        dfd = self._open_parent(path, parts, create=False)
        try:
            try:
                # O_NONBLOCK: a FIFO planted at the name must not hang us (no effect on files).
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dfd)
            except OSError as exc:
                raise self._os_error(path, exc, parts[-1]) from None
        finally:
            os.close(dfd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ServerFileError(f"Cannot read '{self.display(path)}': it is not a regular file.", path)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write_new(self, path: str, data: bytes) -> None:
        """Create path with data; never overwrites (FileExists), never shows a partial file.

        The data goes to a temporary file in the same directory, is fsynced, then hard-linked to
        the target name (link(2) fails if the name exists, unlike rename), then the temporary name
        is removed. A crash leaves at most a '.mk-tmp-*' file, never a torn target.
        """
        data = bytes(data)
        parts = self._file_parts(path)
        name = parts[-1]
        dfd = self._open_parent(path, parts, create=True)
        try:
            tmp = f".mk-tmp-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd)   # SQL Server ACLs backups to its service account
            try:
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                except FileExistsError as exc:
                    try:
                        is_link = stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
                    except OSError:
                        is_link = False
                    if is_link:                           # same rule as resolve(): symlinks are refused
                        raise self._refuse(path, f"'{name}' is a symbolic link") from None
                    raise self._os_error(path, exc) from None
                except OSError as exc:
                    raise self._os_error(path, exc) from None
            finally:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except FileNotFoundError:
                    pass
            os.fsync(dfd)                                 # make the new name durable
        finally:
            os.close(dfd)

    def write_replace(self, path: str, data: bytes) -> None:
        """Create or replace path with data, atomically (BACKUP … WITH INIT/FORMAT, and appends).

        Like write_new, the data is fsynced under a temporary name first; rename(2) then swaps it
        in, so a reader sees the old file or the new one, never a torn one. A symlink or a
        directory at the name is refused, not replaced.
        """
        data = bytes(data)
        parts = self._file_parts(path)
        name = parts[-1]
        dfd = self._open_parent(path, parts, create=True)
        try:
            try:
                st_ = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                st_ = None
            except OSError as exc:
                raise self._os_error(path, exc) from None
            if st_ is not None and stat.S_ISLNK(st_.st_mode):
                raise self._refuse(path, f"'{name}' is a symbolic link")
            if st_ is not None and not stat.S_ISREG(st_.st_mode):
                raise ServerFileError(f"Cannot write '{self.display(path)}': it is not a regular file.", path)
            tmp = f".mk-tmp-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError as exc:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except FileNotFoundError:
                    pass
                raise self._os_error(path, exc) from None
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def copy(self, src_fs: "ServerFileSystem", src: str, dst: str) -> None:
        """Copy src (on src_fs) to dst (on this file system); never overwrites.

        For `mirrorkit lab cp A:PATH B:PATH`.
        """
        self.write_new(dst, src_fs.read_bytes(src))
