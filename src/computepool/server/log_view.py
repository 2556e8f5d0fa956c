"""Reading a job's logs with bounded memory: byte windows of one file, tails of several, and
the follow loop's increments. Everything is read in chunks of ``LOG_CHUNK_BYTES``; nothing
holds a whole log.

A job has one log file per worker rank and attempt. With one file (or one chosen by attempt
and rank) the answer is raw bytes of a window ``[start, end)`` of it; with several, each
file's tail in whole lines, each line prefixed with ``[attempt A rank R]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from computepool.bounds import LOG_CHUNK_BYTES, LOG_RESPONSE_MAX_BYTES


@dataclass(frozen=True)
class LogFile:
    attempt: int
    rank: int
    path: Path

    @property
    def prefix(self) -> bytes:
        return f"[attempt {self.attempt} rank {self.rank}] ".encode()


def log_files(
    found: Iterable[tuple[int, int, str | Path]], attempt: int | None, rank: int | None
) -> list[LogFile]:
    """The job's log files, narrowed to one attempt and/or rank when given."""
    return [
        LogFile(int(a), int(r), Path(p))
        for a, r, p in found
        if (attempt is None or a == attempt) and (rank is None or r == rank)
    ]


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def window(
    size: int,
    offset: int | None,
    limit: int | None,
    tail: int | None,
    cap: int = LOG_RESPONSE_MAX_BYTES,
) -> tuple[int, int]:
    """``[start, end)`` of a file of ``size`` bytes: from ``offset`` (at most ``limit``
    bytes), or its last ``tail`` bytes, or by default its last ``cap``; never over ``cap``."""
    n = min(limit if limit is not None else cap, cap)
    if offset is not None:
        start = min(offset, size)
        return start, min(start + n, size)
    n = min(tail if tail is not None else cap, cap)
    return max(size - n, 0), size


def read_range(path: Path, start: int, end: int, chunk: int = LOG_CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of ``path``, ``chunk`` at a time (none if it is gone)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the last chunk
    except OSError:
        return
    with f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data


def with_prefix(lines: bytes, prefix: bytes) -> bytes:
    """``lines`` (each ended by a newline, but maybe the last) with ``prefix`` before each."""
    body = lines[:-1] if lines.endswith(b"\n") else lines
    return b"".join(prefix + ln + b"\n" for ln in body.split(b"\n"))


def read_at(path: Path, start: int, n: int) -> bytes:
    """At most ``n`` bytes of ``path`` from ``start`` (none if it is gone)."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(n)
    except OSError:
        return b""


def prefixed_lines(chunks: Iterable[bytes], prefix: bytes, skip_partial: bool) -> Iterator[bytes]:
    """Whole lines of ``chunks``, each after ``prefix``; ``skip_partial`` drops the first
    (cut) line. A last line without a newline is ended with one."""
    rest = b""
    for data in chunks:
        buf = rest + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0 and len(buf) < LOG_CHUNK_BYTES:
            rest = buf
            continue
        if cut == 0:  # a line longer than a chunk: pass it on in pieces
            cut = len(buf)
        lines, rest = buf[:cut], buf[cut:]
        if skip_partial:
            nl = lines.find(b"\n")
            lines, skip_partial = lines[nl + 1 :] if nl >= 0 else b"", nl < 0
        if lines:
            yield with_prefix(lines, prefix)
    if rest and not skip_partial:
        yield prefix + rest + b"\n"


def capped(chunks: Iterable[bytes], cap: int = LOG_RESPONSE_MAX_BYTES) -> Iterator[bytes]:
    """``chunks`` up to ``cap`` bytes in all."""
    left = cap
    for c in chunks:
        if left <= 0:
            return
        yield c[:left]
        left -= len(c)


def tails(files: Sequence[LogFile], tail: int | None) -> Iterator[bytes]:
    """Several files: each one's last ``tail`` bytes (default and at most: its share of the
    response cap) in whole prefixed lines; the answer stays within the cap."""
    share = LOG_RESPONSE_MAX_BYTES // max(len(files), 1)
    n = min(tail if tail is not None else share, share)

    def each() -> Iterator[bytes]:
        for f in files:
            size = size_of(f.path)
            start = max(size - n, 0)
            yield from prefixed_lines(read_range(f.path, start, size), f.prefix, start > 0)

    return capped(each())


@dataclass
class Follower:
    """The follow loop's reader: what each file gained since the last call, in chunks;
    with several files, whole prefixed lines (a partial last line waits for its end)."""

    offsets: dict[Path, int]
    prefixed: bool

    def new_bytes(self, files: Sequence[LogFile]) -> Iterator[bytes]:
        for f in files:
            start, end = self.offsets.get(f.path, 0), size_of(f.path)
            while start < end:
                data = read_at(f.path, start, min(LOG_CHUNK_BYTES, end - start))
                if not data:
                    break
                cut = len(data)
                if self.prefixed:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0 and len(data) < LOG_CHUNK_BYTES:
                        break  # a partial line: wait for its end
                    cut = cut or len(data)  # a line longer than a chunk: in pieces
                start += cut
                self.offsets[f.path] = start
                yield with_prefix(data[:cut], f.prefix) if self.prefixed else data

    def finish(self, files: Sequence[LogFile]) -> Iterator[bytes]:
        """After the job ended: everything left, partial last lines included."""
        yield from self.new_bytes(files)
        if self.prefixed:
            for f in files:
                start, end = self.offsets.get(f.path, 0), size_of(f.path)
                if end > start:
                    data = read_at(f.path, start, min(LOG_CHUNK_BYTES, end - start))
                    self.offsets[f.path] = start + len(data)
                    yield with_prefix(data, f.prefix)


def start_offsets(files: Sequence[LogFile], tail: int | None) -> dict[Path, int]:
    """Where following starts: the beginning, or each file's last ``tail`` bytes."""
    if tail is None:
        return {}
    return {f.path: max(size_of(f.path) - tail, 0) for f in files}
