"""The model catalogue: names to local ONNX classifier folders, read without loading any model."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tomllib
from dataclasses import dataclass
from functools import lru_cache

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
CATALOGUE_PATH = os.path.join(MODELS_DIR, "catalogue.toml")
MODEL_FILES = ("model.onnx", "tokenizer.json", "config.json")


class ModelError(ValueError):
    """A model that cannot be used: unknown, missing files, bad config or a digest mismatch."""


@dataclass(frozen=True, slots=True)
class PrefilterInfo:
    """A model's cheap first pass over long texts (config.json ``prefilter``; detectors/window_filter.py)."""

    path: str  # the .npz file
    max_windows: int  # a text of more windows has only this many scored, the best ranked
    sha256: str  # expected digest of the file (the catalogue's ``prefilter_sha256``); "" when not pinned


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A classifier folder (model.onnx, tokenizer.json, config.json) and what is known about it."""

    name: str
    path: str  # absolute folder
    labels: tuple[str, ...]  # by class index (config.json id2label)
    label: str  # the label reported by default
    max_length: int
    sha256: str  # expected digest of model.onnx; "" when not pinned
    multi_label: bool  # sigmoid per label instead of a softmax over labels
    prefilter: PrefilterInfo | None = None

    @property
    def onnx_path(self) -> str:
        return os.path.join(self.path, "model.onnx")


@lru_cache(maxsize=8)
def _catalogue(path: str, mtime_ns: int) -> dict[str, dict[str, object]]:
    with open(path, "rb") as handle:
        models = tomllib.load(handle).get("model", [])
    return {str(entry["name"]): entry for entry in models}


def catalogue(path: str = CATALOGUE_PATH) -> dict[str, dict[str, object]]:
    """The catalogue's entries by name (an absent catalogue is empty)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return {}
    return _catalogue(path, mtime)


def _read_config(folder: str) -> dict[str, object]:
    missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise ModelError(f"model folder {folder} lacks {', '.join(missing)}")
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        config: dict[str, object] = json.load(handle)
    return config


def _labels(config: dict[str, object], folder: str) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ModelError(f"{folder}/config.json has no id2label")
    try:
        return tuple(str(id2label[key]) for key in sorted(id2label, key=int))
    except ValueError as exc:
        raise ModelError(f"{folder}/config.json: id2label keys must be class indices") from exc


def resolve(model: str, catalogue_path: str = CATALOGUE_PATH) -> ModelInfo:
    """A catalogue name or a local folder, checked for its files and labels (no model loaded)."""
    entry = catalogue(catalogue_path).get(model)
    if entry is None and not os.path.isdir(model):
        known = ", ".join(sorted(catalogue(catalogue_path))) or "none"
        raise ModelError(f"unknown model `{model}`: not in the catalogue (known: {known}) nor a folder")
    entry = entry or {}
    base = os.path.dirname(os.path.abspath(catalogue_path))
    folder = os.path.normpath(os.path.join(base, str(entry["path"]))) if entry else os.path.abspath(model)
    config = _read_config(folder)
    labels = _labels(config, folder)
    if entry and list(labels) != list(entry.get("labels", labels)):  # type: ignore[call-overload]
        raise ModelError(f"catalogue labels of `{model}` differ from {folder}/config.json: {list(labels)}")
    default_label = str(entry.get("label", labels[-1]))
    max_length = int(str(entry.get("max_length", config.get("max_length", 512))))
    multi = config.get("problem_type") == "multi_label_classification"
    prefilter = _prefilter(config, folder, str(entry.get("prefilter_sha256", "")))
    sha256 = str(entry.get("sha256", ""))
    return ModelInfo(model, folder, labels, default_label, max_length, sha256, multi, prefilter)


def _prefilter(config: dict[str, object], folder: str, sha256: str) -> PrefilterInfo | None:
    spec = config.get("prefilter")
    if spec is None:
        return None
    needs = f"{folder}/config.json: `prefilter` needs file and max_windows"
    if not isinstance(spec, dict):
        raise ModelError(needs)
    try:
        path = os.path.join(folder, str(spec["file"]))
        info = PrefilterInfo(path, int(spec["max_windows"]), sha256)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(needs) from exc
    if info.max_windows < 1:
        raise ModelError(f"{folder}/config.json: `prefilter` max_windows must be at least 1")
    if not os.path.isfile(info.path):
        raise ModelError(
            f"model folder {folder} lacks {spec['file']} (config.json names it as the prefilter)"
        )
    return info


_digests: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


def file_sha256(path: str) -> str:
    """The file's SHA-256, memoised by path, size and modification time."""
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        known = _digests.get(key)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        known = digest.hexdigest()
        with _digest_lock:
            _digests[key] = known
    return known


def verify(info: ModelInfo, expected: str = "") -> None:
    """Raise ModelError unless model.onnx has the pinned digest (``expected`` or the catalogue's), and
    the prefilter file, if any, the catalogue's ``prefilter_sha256``."""
    _check_digest(info.name, info.onnx_path, (expected or info.sha256).lower())
    if info.prefilter is not None:
        _check_digest(info.name, info.prefilter.path, info.prefilter.sha256.lower())


def _check_digest(name: str, path: str, pinned: str) -> None:
    if not pinned:
        return
    actual = file_sha256(path)
    if actual != pinned:
        raise ModelError(
            f"refusing to load model `{name}`: {path} has sha256 {actual}, "
            f"but {pinned} is pinned; the file was changed or replaced"
        )
