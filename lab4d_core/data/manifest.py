"""``data/<dataset>/manifest.json``: the one file every later stage takes as its data input.

A synthesized dataset lives next to its manifest; an existing processed
database (``source: {path: DIR}``) stays where it is and the manifest points to
it, so it is validated once and never copied or modified.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lab4d_core import __version__
from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.utils.io import atomic_write_text


@dataclass(frozen=True)
class Manifest:
    root: Path
    """Folder that contains database/ (and GroundTruth/ for synthetic data)."""
    collection: str
    videos: list[str]
    num_frames: list[int]
    train_res: int
    prefixes: list[str]
    ground_truth: bool
    digest: str = ""
    """SHA-256 of the manifest file: a rebuilt dataset has a new one (its manifest records when it was made)."""

    def database(self) -> Database:
        return Database(self.root, self.collection, resolution=self.train_res, prefixes=tuple(self.prefixes))


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise Lab4dError(f"{path}: manifest not found; create the dataset first (lab4d synth or lab4d link)")
    try:
        text = path.read_text()
        data = json.loads(text)
        root = Path(data.get("root", "."))
        return Manifest(
            root=root if root.is_absolute() else (path.parent / root).resolve(),
            collection=data["collection"],
            videos=list(data["videos"]),
            num_frames=[int(n) for n in data["num_frames"]],
            train_res=int(data["train_res"]),
            prefixes=list(data["prefixes"]),
            ground_truth=bool(data["ground_truth"]),
            digest=hashlib.sha256(text.encode()).hexdigest(),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise Lab4dError(f"{path}: not a valid dataset manifest ({error}); delete it and rebuild the dataset") from None


def link_database(
    root: Path, collection: str, out: Path, train_res: int = 256, prefixes: tuple[str, ...] = ("crop",)
) -> dict:
    """Validate an existing processed database in place and write a manifest pointing to it."""
    root = Path(root).resolve()
    database = Database(root, collection, resolution=train_res, prefixes=prefixes)
    manifest = {
        "root": str(root),
        "collection": collection,
        "videos": [video.seqname for video in database.videos],
        "num_frames": [video.num_frames for video in database.videos],
        "train_res": train_res,
        "prefixes": list(prefixes),
        "ground_truth": (root / "GroundTruth").is_dir(),
        "source": {"path": str(root)},
        "lab4d_core": __version__,
    }
    atomic_write_text(out, json.dumps(manifest, indent=1))
    return manifest
