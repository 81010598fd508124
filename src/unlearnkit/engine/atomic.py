"""Atomic file writes: the one way every output file of the toolkit is written.

The data goes to a hidden temporary name beside the target and is renamed over it. Rename is atomic, so a
process killed at any instant (Ctrl-C, SIGTERM, the OOM killer) leaves the old file or the new one, never half
of one. No fsync: that guards against power loss only, and costs more than a small model's epoch.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (bytes, or text as UTF-8) to `path` atomically; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write or the rename failed
    return path
