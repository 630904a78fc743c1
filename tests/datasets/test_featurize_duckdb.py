"""The out-of-core featurizer (DuckDB ASOF join to Parquet) against the pandas point-in-time join."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recs_assets.core.datasets.featurize_duckdb import featurize_to_parquet
from recs_assets.core.datasets.point_in_time import point_in_time_join


def _features(rng: np.random.Generator, key: str, ids: list[str], n: int) -> pd.DataFrame:
    base = pd.Timestamp("2024-01-01", tz="UTC")
    return (
        pd.DataFrame(
            {
                key: rng.choice(ids, n),
                "feature_timestamp": base + pd.to_timedelta(rng.integers(0, 40, n), unit="D"),
                "events_all": rng.integers(0, 100, n),
                "mean_rating": rng.normal(size=n),
                "top_genre": rng.choice(["a", "b", None], n),
            }
        )
        .drop_duplicates([key, "feature_timestamp"])
        .reset_index(drop=True)
    )


def _spark_like_folder(frame: pd.DataFrame, folder, parts: int = 3) -> str:
    """Several part files in one folder, the way Spark writes a table."""
    folder.mkdir()
    for n, chunk in enumerate(np.array_split(frame, parts)):
        out = chunk.copy()
        out["feature_timestamp"] = out["feature_timestamp"].astype("datetime64[us, UTC]")
        out.to_parquet(folder / f"part-{n:05d}.parquet", index=False)
    return str(folder)


def test_duckdb_featurize_equals_the_pandas_join(tmp_path) -> None:
    rng = np.random.default_rng(11)
    users = _features(rng, "user_id", ["u1", "u2", "u3", "u4"], 80)
    items = _features(rng, "item_id", ["i1", "i2", "i3"], 50)
    base = pd.Timestamp("2024-01-01", tz="UTC")
    rows = pd.DataFrame(
        {
            "user_id": rng.choice(["u1", "u2", "u3", "u4", "u9"], 400),
            "item_id": rng.choice(["i1", "i2", "i3", "i7"], 400),
            # whole days included, so some rows sit exactly on a snapshot (must not see it)
            "timestamp": base + pd.to_timedelta(rng.integers(0, 45 * 4, 400) * 6, unit="h"),
            "event_type": "rate",
            "rating": rng.integers(1, 6, 400).astype(float),
            "extra": "dropped",
        },
        index=rng.permutation(np.arange(1000, 1400)),  # not sorted by time, odd index
    )
    items_folder = _spark_like_folder(items, tmp_path / "items")
    # a file in an underscore folder is not part of the table (pyarrow and Spark skip it)
    (tmp_path / "items" / "_state").mkdir()
    pd.DataFrame({"item_id": ["i1"], "_decayed": [1.0]}).to_parquet(
        tmp_path / "items" / "_state" / "items.parquet"
    )
    out = featurize_to_parquet(
        rows,
        _spark_like_folder(users, tmp_path / "users"),
        items_folder,
        tmp_path / "out" / "train.parquet",
        memory_limit="256MB",
        threads=2,
    )
    got = pd.read_parquet(out.path)
    expected = point_in_time_join(
        rows.drop(columns=["extra"]), users, key="user_id", prefix="user__"
    )
    expected = point_in_time_join(expected, items, key="item_id", prefix="item__")
    expected = expected.reset_index(drop=True)

    assert out.rows == len(rows) == len(got)
    assert list(got.columns) == list(expected.columns)
    assert got["user_id"].tolist() == rows["user_id"].tolist()  # input order kept
    assert got["timestamp"].tolist() == rows["timestamp"].tolist()
    on_a_snapshot = rows["timestamp"].isin(users["feature_timestamp"]).sum()
    assert on_a_snapshot > 0  # the strict rule is exercised
    for col in ("user__events_all", "user__mean_rating", "item__events_all", "item__mean_rating"):
        np.testing.assert_allclose(
            got[col].astype(float).to_numpy(), expected[col].astype(float).to_numpy()
        )
    for col in ("user__top_genre", "item__top_genre", "user__feature_timestamp"):
        assert got[col].isna().tolist() == expected[col].isna().tolist()
        kept = got[col].notna()
        assert got.loc[kept, col].tolist() == expected.loc[kept, col].tolist()
    assert 0 < out.with_user_features < 1
    assert out.with_user_features == pytest.approx(
        expected["user__feature_timestamp"].notna().mean()
    )
    assert len(out.preview) == 5
    assert not list((tmp_path / "out").glob("recs-duckdb-*"))  # spill folder removed


def test_duckdb_featurize_refuses_rows_without_time(tmp_path) -> None:
    rng = np.random.default_rng(1)
    users = _spark_like_folder(_features(rng, "user_id", ["u1"], 3), tmp_path / "u")
    items = _spark_like_folder(_features(rng, "item_id", ["i1"], 3), tmp_path / "i")
    rows = pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "timestamp": [pd.NaT]})
    with pytest.raises(ValueError, match="null timestamp"):
        featurize_to_parquet(rows, users, items, tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="lack column"):
        featurize_to_parquet(rows[["user_id"]], users, items, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
