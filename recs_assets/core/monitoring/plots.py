"""Monitoring plots as PNG, embedded in Dagster markdown metadata as base64 data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def png_markdown(fig: plt.Figure, alt: str) -> str:
    """``![alt](data:image/png;base64,...)`` of ``fig`` (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')})"


def distribution_grid(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    title: str,
    labels: tuple[str, str] = ("reference", "latest"),
) -> str:
    """One panel per feature: the two samples as overlaid density histograms; markdown image."""
    names = list(reference)
    cols = min(3, max(1, len(names)))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        ref = np.asarray(reference[name], dtype=float)
        cur = np.asarray(current[name], dtype=float)
        ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        both = np.concatenate([ref, cur])
        edges = np.histogram_bin_edges(both, bins=30) if both.size else 10
        ax.hist(ref, bins=edges, density=True, alpha=0.5, label=labels[0])
        ax.hist(cur, bins=edges, density=True, alpha=0.5, label=labels[1])
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(title)
    return png_markdown(fig, title)


def bar_chart(
    frame: pd.DataFrame, x: str, y: str, title: str, err: tuple[str, str] | None = None
) -> str:
    """Bars of ``frame[y]`` by ``frame[x]``, with error bars from (low, high) columns; markdown image."""
    fig, ax = plt.subplots(figsize=(5, 3))
    values = frame[y].to_numpy(dtype=float)
    yerr = None
    if err is not None:
        low, high = frame[err[0]].to_numpy(dtype=float), frame[err[1]].to_numpy(dtype=float)
        yerr = np.vstack([values - low, high - values])
    ax.bar(frame[x].astype(str), values, yerr=yerr, capsize=4)
    ax.set_ylabel(y)
    ax.set_title(title)
    return png_markdown(fig, title)


def table_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A frame as a markdown table, floats rounded to ``digits``."""
    if frame.empty:
        return "(empty)"
    return frame.round(digits).to_markdown(index=False)
