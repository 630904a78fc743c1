"""Where the Phase 1 tables come from: one resource, three kinds (synthetic, files, movielens).

``RECS_SOURCE`` picks the source for a deployment (see ``Phase1Source.from_env``):
``synthetic`` | ``synthetic:<preset>`` | ``files:<folder>`` | ``movielens:<folder>``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource

from recs_assets.core.paths import data_subdir
from recs_assets.core.phase1.event_rows import EventRows, FrameRows, ParquetRows
from recs_assets.core.phase1.files import read_parquet_frame, read_tables
from recs_assets.core.phase1.forgetting import drop_forgotten, forget_requests, forgotten_mask
from recs_assets.core.phase1.movielens import load_movielens
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.source_contract import SourceContract
from recs_assets.core.phase1.synthetic import PRESETS, cached_preset, cached_preset_folder

SOURCE_ENV = "RECS_SOURCE"
SOURCE_KINDS: tuple[str, ...] = ("synthetic", "files", "movielens")


class Phase1Source(ConfigurableResource):
    """The upstream of the raw Phase 1 assets.

    Attributes:
        kind: ``synthetic`` (generated, ``preset`` and ``seed``), ``files`` (a folder of Parquet or
            CSV tables at ``path``) or ``movielens`` (the published MovieLens 100K folder at ``path``).
        path: folder for ``files`` and ``movielens``.
        preset: synthetic size (``small``, ``1m``, ``10m``).
        seed: synthetic seed.
        rating_scale: the ratings the source holds (``1-5``, ``0.5-5 step 0.5``, ``1-10``,
            ``none`` for implicit feedback); empty means the ``files`` folder's manifest
            (``recs_source.yaml``), else ``1-5``. See ``docs/phase1_schema.md``.
        event_types: the event types the source sends; empty means the manifest's, else all.
    """

    kind: str = "synthetic"
    path: str = ""
    preset: str = "small"
    seed: int = 42
    rating_scale: str = ""
    event_types: list[str] = []

    def contract(self) -> SourceContract:
        """What rows of this source must satisfy beyond the schema (config over manifest)."""
        declared = (
            SourceContract.from_folder(self.path)
            if self.kind == "files" and self.path
            else SourceContract()
        )
        return declared.with_overrides(self.rating_scale, self.event_types)

    def load(self) -> Phase1Tables:
        """The three tables, pseudonymized, in the canonical columns (not yet validated), without
        the rows of users who asked to be forgotten (``recs forget-user``)."""
        tables, _ = drop_forgotten(self._load_source(), forget_requests().digests())
        return tables

    def load_dimensions(self) -> Phase1Tables:
        """``load()``'s users and items, with no interactions (the synthetic source's events
        are not read)."""
        if self.kind != "synthetic":
            tables = self.load()
            return replace(tables, interactions=tables.interactions.iloc[0:0])
        folder = self._synthetic_folder()
        tables = Phase1Tables(
            interactions=ParquetRows(folder / "interactions.parquet").take(np.arange(0)),
            users=read_parquet_frame(folder / "users.parquet"),
            items=read_parquet_frame(folder / "items.parquet"),
        )
        return drop_forgotten(tables, forget_requests().digests())[0]

    def event_rows(self) -> EventRows:
        """``load()``'s interactions as rows (same positions): the synthetic source's Parquet
        file read a column or a few row groups at a time (``event_rows.ParquetRows``, without
        forgotten users' rows), the other kinds' frame in memory."""
        if self.kind != "synthetic":
            return FrameRows(self.load().interactions)
        path = self._synthetic_folder() / "interactions.parquet"
        digests = forget_requests().digests()
        if not digests:
            return ParquetRows(path)
        users = ParquetRows(path).column("user_id")
        return ParquetRows(path, keep=np.flatnonzero(~forgotten_mask(users, digests).to_numpy()))

    def _synthetic_folder(self) -> Path:
        self._check_preset()
        return cached_preset_folder(self.preset, self.seed, data_subdir("sources"))

    def _check_preset(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(
                f"unknown synthetic preset {self.preset!r}; known: {', '.join(PRESETS)}"
            )

    def _load_source(self) -> Phase1Tables:
        if self.kind == "synthetic":
            self._check_preset()
            # generated once per data dir (``sources/``), read back afterwards
            return cached_preset(self.preset, self.seed, data_subdir("sources"))
        if self.kind in ("files", "movielens"):
            if not self.path:
                raise ValueError(f"Phase1Source kind {self.kind!r} needs a path")
            if self.kind == "files":
                return read_tables(self.path)
            return load_movielens(self.path)
        raise ValueError(
            f"unknown Phase1Source kind {self.kind!r}; use one of {', '.join(SOURCE_KINDS)}"
        )

    @classmethod
    def from_spec(cls, spec: str, seed: int = 42) -> Phase1Source:
        """Parse ``synthetic``, ``synthetic:1m``, ``files:/path`` or ``movielens:/path``."""
        kind, _, arg = spec.strip().partition(":")
        if kind == "synthetic":
            return cls(kind="synthetic", preset=arg or "small", seed=seed)
        if kind in ("files", "movielens"):
            if not arg:
                raise ValueError(f"{SOURCE_ENV}={spec!r}: {kind} needs a folder, e.g. {kind}:/data")
            return cls(kind=kind, path=arg)
        raise ValueError(
            f"{SOURCE_ENV}={spec!r}: unknown kind {kind!r}; use synthetic[:preset], files:/path "
            "or movielens:/path"
        )

    @classmethod
    def from_env(cls) -> Phase1Source:
        """The source named by ``$RECS_SOURCE`` (default ``synthetic``)."""
        return cls.from_spec(os.environ.get(SOURCE_ENV, "") or "synthetic")
