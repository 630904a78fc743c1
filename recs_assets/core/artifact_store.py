"""Asset values that are not tables, stored without pickle: JSON, ``.npz`` and Parquet in a folder.

``save_artifact(value, folder)`` walks a value made of dataclasses, lists, tuples, dicts,
scalars, datetimes, numpy arrays, scipy sparse matrices, pandas frames and fitted recommenders
(their own ``save``/``load``: ``params.json`` + ``state.npz`` with the id maps beside them), and
writes ``artifact.json`` (the structure), ``arrays.npz`` (every array, ``allow_pickle=False``),
``frames/<where>.parquet`` (named for the field that holds each frame, e.g.
``split.train_frame.parquet``, so DuckDB and Spark read them too) and ``models/*``. ``load_artifact(folder)`` rebuilds it. Anything else is a
``TypeError`` naming the type and where it sits, never a silent pickle. Only classes of
``recs_assets`` are rebuilt from the stored names.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import shutil
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_assets.core.models.base import Recommender

STRUCTURE = "artifact.json"
ARRAYS = "arrays.npz"
FORMAT_VERSION = 1
_TRUSTED = "recs_assets."


class _Writer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.arrays: dict[str, np.ndarray] = {}
        self.count = 0

    def _key(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        if value.dtype == object:
            if not all(isinstance(v, str) for v in value.ravel()):
                raise TypeError(f"{where}: object array holding non-strings cannot be stored")
            key = self._key("a")
            self.arrays[key] = value.astype(str) if value.size else np.array([], dtype="U1")
            return {"$array": key, "object": True}
        key = self._key("a")
        self.arrays[key] = value
        return {"$array": key}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            v = float(value)
            return v if math.isfinite(v) else {"$float": str(v)}
        if isinstance(value, pd.Timestamp | datetime):
            return {
                "$datetime": pd.Timestamp(value).isoformat(),
                "pandas": isinstance(value, pd.Timestamp),
            }
        if isinstance(value, date):
            return {"$date": value.isoformat()}
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            return {
                "$csr": [
                    self.array(csr.data, where),
                    self.array(csr.indices, where),
                    self.array(csr.indptr, where),
                ],
                "shape": list(csr.shape),
            }
        if isinstance(value, pd.DataFrame):
            # named for where it sits (``split.train_frame.parquet``), so other engines find it
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", where.removeprefix("value").lstrip("."))
            name = f"frames/{stem or 'value'}.parquet"
            if (self.folder / name).exists():
                name = f"frames/{stem or 'value'}-{self._key('f')}.parquet"
            (self.folder / "frames").mkdir(exist_ok=True)
            value.to_parquet(self.folder / name, index=True)
            return {"$frame": name}
        if isinstance(value, Recommender):
            name = f"models/{self._key('m')}"
            value.save(self.folder / name)
            return {"$model": _qualname(type(value), where), "dir": name}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
                if f.init and not (f.name.startswith("_") and not f.compare)
            }
            return {"$dataclass": _qualname(type(value), where), "fields": fields}
        if isinstance(value, list | tuple):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {"$tuple": items} if isinstance(value, tuple) else items
        if isinstance(value, dict):
            return {
                "$dict": [
                    [self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        raise TypeError(f"{where}: a {type(value).__name__} cannot be stored without pickle")


def _qualname(cls: type, where: str) -> str:
    if not cls.__module__.startswith(_TRUSTED):
        raise TypeError(f"{where}: {cls.__module__}.{cls.__qualname__} is not a recs_assets type")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str) -> type:
    module, _, qual = name.partition(":")
    if not module.startswith(_TRUSTED):
        raise ValueError(f"refusing to load {name}: not a recs_assets type")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


class _Reader:
    def __init__(self, folder: Path, arrays: dict[str, np.ndarray]) -> None:
        self.folder = folder
        self.arrays = arrays

    def decode(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$array" in node:
            arr = self.arrays[node["$array"]]
            return arr.astype(object) if node.get("object") else arr
        if "$float" in node:
            return float(node["$float"])
        if "$datetime" in node:
            stamp = pd.Timestamp(node["$datetime"])
            return stamp if node.get("pandas") else stamp.to_pydatetime()
        if "$date" in node:
            return date.fromisoformat(node["$date"])
        if "$csr" in node:
            data, indices, indptr = (self.decode(a) for a in node["$csr"])
            return sp.csr_matrix((data, indices, indptr), shape=tuple(node["shape"]))
        if "$frame" in node:
            return pd.read_parquet(self.folder / node["$frame"])
        if "$model" in node:
            return _class(node["$model"]).load(self.folder / node["dir"])
        if "$dataclass" in node:
            cls = _class(node["$dataclass"])
            return cls(**{k: self.decode(v) for k, v in node["fields"].items()})
        if "$tuple" in node:
            return tuple(self.decode(v) for v in node["$tuple"])
        if "$dict" in node:
            return {_hashable(self.decode(k)): self.decode(v) for k, v in node["$dict"]}
        raise ValueError(f"unknown stored node {sorted(node)}")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def save_artifact(value: Any, folder: Path | str) -> Path:
    """Store ``value`` in ``folder`` (replaced as a whole, atomically: written beside, then
    renamed); raises ``TypeError`` for anything that would need pickle."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        writer = _Writer(tmp)
        structure = {"format": FORMAT_VERSION, "value": writer.encode(value, "value")}
        np.savez(tmp / ARRAYS, **writer.arrays)
        (tmp / STRUCTURE).write_text(json.dumps(structure))
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def has_artifact(folder: Path | str) -> bool:
    return (Path(folder) / STRUCTURE).is_file()


def load_artifact(folder: Path | str) -> Any:
    """The value ``save_artifact`` stored in ``folder``."""
    folder = Path(folder)
    structure = json.loads((folder / STRUCTURE).read_text())
    if structure.get("format") != FORMAT_VERSION:
        raise ValueError(f"{folder}: artifact format {structure.get('format')}, expected 1")
    with np.load(folder / ARRAYS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _Reader(folder, arrays).decode(structure["value"])
