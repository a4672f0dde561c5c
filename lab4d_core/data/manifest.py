"""``data/<dataset>/manifest.json``: the one file every later stage takes as its data input.

A synthesized dataset lives next to its manifest; an existing processed
database (``source: {path: DIR}``) stays where it is and the manifest points to
it, so it is validated once and never copied or modified.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from lab4d_core import __version__
from lab4d_core.data.database import Database, read_collection_config
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


def resolution_on_disk(root: Path, collection: str, prefixes: tuple[str, ...] = ("crop",)) -> int:
    """The R of the ``<prefix>-<R>.npy`` rgb arrays that every video has, for every prefix.

    A database is read at the resolution it was preprocessed at (lab4d's downloads: 256) unless told
    otherwise; several on disk are an error, since picking one silently could train on the wrong one.
    """
    entries, problems = read_collection_config(Path(root), collection)
    if not entries:
        raise Lab4dError("\n".join(problems))
    common: set[int] | None = None
    for img_dir, _, _ in entries:
        for prefix in prefixes:
            pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.npy")
            found = {int(m[1]) for p in img_dir.glob(f"{prefix}-*.npy") if (m := pattern.fullmatch(p.name))}
            common = found if common is None else common & found
    where = f"dataset {collection!r} under {root}"
    if not common:
        arrays = " and ".join(f"{prefix}-<R>.npy" for prefix in prefixes)
        raise Lab4dError(
            f"{where}: no resolution R at which every video has its rgb arrays ({arrays} in "
            f"JPEGImages/Full-Resolution/<video>/, e.g. {entries[0][0]}); is the database preprocessed?"
        )
    if len(common) > 1:
        found = ", ".join(map(str, sorted(common)))
        raise Lab4dError(
            f"{where}: rgb arrays at several resolutions ({found}); choose one with --train-res "
            "(source.train_res in the dataset YAML)"
        )
    return common.pop()


def link_database(
    root: Path, collection: str, out: Path, train_res: int | None = None, prefixes: tuple[str, ...] = ("crop",)
) -> dict:
    """Validate an existing processed database in place and write a manifest pointing to it.

    ``train_res`` defaults to the resolution on disk (:func:`resolution_on_disk`).
    """
    root = Path(root).resolve()
    if train_res is None:
        train_res = resolution_on_disk(root, collection, prefixes)
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
