"""The instance's error log: a text file in the instance's server file system
(/var/opt/mssql/log/errorlog), read back by sp_readerrorlog / xp_readerrorlog."""
from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

LOG_PATH = "/var/opt/mssql/log/errorlog"


class ErrorLog:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, process: str, text: str, when: Optional[datetime] = None) -> None:
        when = when or datetime.now()
        stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 10000:02d}"
        line = f"{stamp} {process:<12}{' '.join(text.splitlines())}\n"
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    def entries(self) -> Iterator[tuple[datetime, str, str]]:
        try:
            data = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        for line in data.splitlines():
            if len(line) < 24:
                continue
            try:
                when = datetime.strptime(line[:22], "%Y-%m-%d %H:%M:%S.%f")
            except ValueError:
                continue
            rest = line[23:]
            process, text = rest[:12].strip(), rest[12:]
            yield when, process, text

    def search(self, first: Optional[str] = None, second: Optional[str] = None,
               start: Optional[datetime] = None, end: Optional[datetime] = None,
               descending: bool = False) -> list[tuple[datetime, str, str]]:
        out = []
        for when, process, text in self.entries():
            low = text.lower()
            if first and first.lower() not in low:
                continue
            if second and second.lower() not in low:
                continue
            if start and when < start:
                continue
            if end and when > end:
                continue
            out.append((when, process, text))
        if descending:
            out.reverse()
        return out
