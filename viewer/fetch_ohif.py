#!/usr/bin/env python3
"""Fetch the pinned OHIF viewer build into viewer/dist/ (git-ignored).

The npm tarball of ``@ohif/app`` carries a ready ``dist/``; this script gets it with
``npm pack`` (the ordinary npm client, so registry and proxy settings apply), checks
the tarball against the pinned sha512 integrity, and unpacks ``package/dist/`` into
``viewer/dist/``. A marker file in ``dist/`` records the integrity it came from; when it
matches, nothing is downloaded again.

    python viewer/fetch_ohif.py [--dest DIR] [--force]

Exits non-zero (and leaves no half-unpacked folder) when npm is missing, the download
fails, or the integrity does not match.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@ohif/app"
VERSION = "3.13.2"
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
MARKER = ".l3net-ohif"
HERE = Path(__file__).resolve().parent
DEFAULT_DEST = HERE / "dist"


def marker_text() -> str:
    return f"{PACKAGE}@{VERSION} {INTEGRITY}\n"


def is_current(dest: Path) -> bool:
    """True when ``dest`` holds the pinned build, unpacked completely by this script."""
    marker = dest / MARKER
    return marker.is_file() and marker.read_text() == marker_text() and (dest / "index.html").is_file()


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def download(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is required to fetch OHIF (install Node.js 20+)")
    result = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(workdir), "--silent"],
        cwd=workdir, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"npm pack {PACKAGE}@{VERSION} failed:\n{result.stderr.strip()}")
    tarballs = list(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise SystemExit(f"npm pack produced {len(tarballs)} tarballs, expected one")
    return tarballs[0]


def unpack(tarball: Path, dest: Path) -> None:
    """Extract ``package/dist/*`` into a sibling temp folder, then swap it in."""
    staging = Path(tempfile.mkdtemp(prefix=".dist-", dir=dest.parent))
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = []
            for member in archive.getmembers():
                if not member.name.startswith("package/dist/") or not (member.isfile() or member.isdir()):
                    continue
                member.name = member.name[len("package/dist/"):]
                if member.name:
                    members.append(member)
            if not any(m.name == "index.html" for m in members):
                raise SystemExit(f"{tarball.name} has no package/dist/index.html")
            archive.extractall(staging, members=members, filter="data")
        (staging / MARKER).write_text(marker_text())
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def fetch(dest: Path = DEFAULT_DEST, force: bool = False) -> Path:
    if not force and is_current(dest):
        print(f"OHIF {VERSION} already in {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ohif-") as tmp:
        tarball = download(Path(tmp))
        got = integrity_of(tarball)
        if got != INTEGRITY:
            raise SystemExit(f"integrity mismatch for {PACKAGE}@{VERSION}: got {got}, expected {INTEGRITY}")
        unpack(tarball, dest)
    print(f"OHIF {VERSION} unpacked into {dest} (integrity checked)")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder (default viewer/dist)")
    parser.add_argument("--force", action="store_true", help="download again even when the marker matches")
    args = parser.parse_args(argv)
    fetch(args.dest.resolve(), args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
