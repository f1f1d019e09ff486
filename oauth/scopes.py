"""The scopes the consent page asks for: the "scopes" list of the repository's marketplace.json."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

__all__ = ["MANIFEST_PATH", "requested_scopes"]

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "marketplace.json"


@lru_cache(maxsize=4)
def requested_scopes(manifest_path: Path = MANIFEST_PATH) -> tuple[str, ...]:
    """The app's scopes, in manifest order. Raises ValueError naming the file when it is unusable."""
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the app manifest {manifest_path}: {exc}") from None
    scopes = manifest.get("scopes") if isinstance(manifest, dict) else None
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s.strip() for s in scopes):
        raise ValueError(f"{manifest_path}: 'scopes' must be a non-empty list of scope strings")
    return tuple(s.strip() for s in scopes)
