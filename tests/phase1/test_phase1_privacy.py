"""Pseudonyms (keyed HMAC) and ZIP -> region, on hand-written values."""

from __future__ import annotations

import hashlib
import hmac
import re

import pandas as pd
import pytest

from recs_assets.core.phase1.privacy import (
    DEV_PSEUDONYM_KEY,
    PSEUDONYM_KEY_ENV,
    pseudonym_key,
    pseudonymize_id,
    pseudonymize_series,
    zip_to_region,
)


def test_pseudonym_is_truncated_hmac_sha256() -> None:
    # the documented construction, computed independently here
    expected = "u_" + hmac.new(b"k1", b"196", hashlib.sha256).hexdigest()[:16]
    assert pseudonymize_id("196", b"k1") == expected
    assert re.fullmatch(r"u_[0-9a-f]{16}", expected)


def test_same_id_and_key_same_pseudonym_different_key_differs() -> None:
    assert pseudonymize_id("42", b"key-a") == pseudonymize_id("42", b"key-a")
    assert pseudonymize_id("42", b"key-a") != pseudonymize_id("42", b"key-b")
    assert pseudonymize_id("42", b"key-a") != pseudonymize_id("43", b"key-a")


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        pseudonymize_id("1", b"")


def test_key_comes_from_env_with_documented_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    assert pseudonym_key() == DEV_PSEUDONYM_KEY.encode()
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "prod-secret")
    assert pseudonym_key() == b"prod-secret"
    series = pd.Series(["7"])
    assert pseudonymize_series(series).iloc[0] == pseudonymize_id("7", b"prod-secret")


def test_series_keeps_nulls_and_treats_numbers_like_their_text() -> None:
    out = pseudonymize_series(pd.Series(["7", None, " 7 ", "8"], dtype=object), b"k")
    assert out.iloc[0] == out.iloc[2] == pseudonymize_id("7", b"k")
    assert pd.isna(out.iloc[1])
    assert out.iloc[3] == pseudonymize_id("8", b"k")
    assert str(out.dtype) == "string"


def test_zip_to_region_by_first_digit() -> None:
    zips = pd.Series(["85711", "02138", "10003-1234", "94043", "T8H1N", None, "1234", " 55105 "])
    # 8 -> Mountain (AZ), 0 -> New England (MA), 1 -> NY-PA, 9 -> Pacific (CA); Canadian postcode,
    # missing and 4-digit values -> unknown; surrounding spaces are ignored (5 -> MN).
    assert zip_to_region(zips).tolist() == [
        "Mountain",
        "New England",
        "New York-Pennsylvania",
        "Pacific",
        "unknown",
        "unknown",
        "unknown",
        "Upper Midwest",
    ]


def test_production_refuses_a_missing_weak_or_public_key() -> None:
    from recs_assets.core.phase1.privacy import DEV_PSEUDONYM_KEY, pseudonym_key
    from recs_assets.resources import build_resources

    local = pseudonym_key({})
    assert local == DEV_PSEUDONYM_KEY.encode()  # the embedded default keeps the public dev key
    production = {
        "RECS_DEPLOYMENT": "production",
        "RECS_SOURCE": "synthetic",
        "RECS_SPARK_MASTER": "spark://127.0.0.1:7077",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "RECS_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for key in ("", DEV_PSEUDONYM_KEY, "short-key"):
        env = {**production, "RECS_PSEUDONYM_KEY": key}
        with pytest.raises(ValueError, match="production needs RECS_PSEUDONYM_KEY"):
            pseudonym_key(env)
        with pytest.raises(ValueError, match="production needs RECS_PSEUDONYM_KEY"):
            build_resources(env)  # refused when the definitions load, not at the first row
    strong = "k" * 40
    assert pseudonym_key({**production, "RECS_PSEUDONYM_KEY": strong}) == strong.encode()
    assert (
        build_resources({**production, "RECS_PSEUDONYM_KEY": strong})["phase1"].kind == "synthetic"
    )
