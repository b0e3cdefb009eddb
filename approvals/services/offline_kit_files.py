"""Where a new offline kit is written: the sealed kit and one share file per custodian, in a
directory of their own (shares are secrets: private from the first byte, never overwritten)."""

import json
import os
from pathlib import Path

from approvals import offline_kit_format as kit_format
from approvals.errors import RequestInvalid


def out_dir_ready(out_dir: Path, custodians: list[str], kit_id: str) -> None:
    """The directory exists (created 0700) and no file of this kit would be overwritten."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    clashes = [
        name
        for name in (f"kit-{kit_id}.json", *(f"share-{c}.txt" for c in custodians))
        if (out_dir / name).exists()
    ]
    if clashes:
        raise RequestInvalid(f"{out_dir} already holds {clashes[0]}: use an empty directory")


def _private_write(path: Path, text: str) -> None:
    """Shares are secrets: 0600 from the first byte, never overwritten."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def kit_files_write(
    out_dir: Path, kit_id: str, sealed: kit_format.SealedKit
) -> tuple[Path, dict[str, Path]]:
    """The kit file and one share file per custodian, written under out_dir."""
    kit_file = out_dir / f"kit-{kit_id}.json"
    # Indented for people; the fingerprint and the seal cover its canonical form.
    kit_file.write_text(json.dumps(sealed.document, indent=2, sort_keys=True) + "\n")
    share_files = {}
    for custodian, text in sealed.shares.items():
        share_files[custodian] = out_dir / f"share-{custodian}.txt"
        _private_write(share_files[custodian], text)
    return kit_file, share_files
