"""Evidence file storage (D3, K2): content-addressed, so the same bytes are stored once and a file's name is its proof.

The database keeps who attached what (``evidence`` rows); this store keeps only bytes, keyed by their SHA-256.
The interface is small on purpose so that an object store (S3, OSS) can replace the local disk later.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EvidenceStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its lowercase hex SHA-256."""

    def open(self, sha256: str) -> BinaryIO:
        """The stored bytes of ``sha256`` as a binary stream; ``FileNotFoundError`` when absent."""

    def exists(self, sha256: str) -> bool:
        """Whether ``sha256`` is stored."""


class LocalEvidenceStore:
    """Files under ``root/ab/cd/<sha256>``; written to a temporary file in the same directory, then renamed,
    so a reader never sees half a file and a crash leaves at most a stray temporary file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):  # never let a crafted "hash" walk the file system
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():  # content-addressed: the same bytes are already there
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)  # atomic on POSIX; a concurrent writer of the same bytes is harmless
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()
