"""Render an ``EvaluationReport`` as markdown (Dagster metadata) and as a standalone HTML file.

Both come from one list of blocks (heading, paragraph, table, image) so they always agree. Plots
are matplotlib (Agg) PNGs embedded as base64 data URIs: precision and recall against k,
popularity bias, and NDCG per user segment.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from recs_assets.core.evaluation.runner import EvaluationReport, ModelEvaluation  # noqa: E402
from recs_assets.core.evaluation.uncertainty import DEFAULT_LEVEL, compare_to_best  # noqa: E402
from recs_assets.core.metrics import AGE_BANDS  # noqa: E402

_KNOWN_ORDER = {label: i for i, (label, _, _) in enumerate(AGE_BANDS)} | {"light": 0, "heavy": 1}


def _groups(evals: Sequence[ModelEvaluation], segment: str) -> list[str]:
    """Group labels of ``segment`` across models; age bands and activity in natural order."""
    labels = {g for e in evals for g in e.segments.get(segment, {})}
    return sorted(labels, key=lambda g: (_KNOWN_ORDER.get(g, len(_KNOWN_ORDER)), g))


# (column title, metric key pattern with {k}) of the headline table
HEADLINE: tuple[tuple[str, str], ...] = (
    ("precision@{k}", "precision@{k}"),
    ("recall@{k}", "recall@{k}"),
    ("NDCG@{k}", "ndcg@{k}"),
    ("MAP@{k}", "map@{k}"),
    ("MRR@{k}", "mrr@{k}"),
    ("HR@{k}", "hit_rate@{k}"),
    ("AUC", "auc"),
)
BEYOND: tuple[tuple[str, str], ...] = (
    ("catalog cov.", "catalog_coverage"),
    ("user cov.", "user_coverage"),
    ("ILD", "ild"),
    ("novelty", "novelty"),
    ("long tail", "long_tail_share"),
    ("pop. bias", "popularity_bias"),
    ("exposure Gini", "exposure_gini"),
)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    alt: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


Block = Heading | Paragraph | Table | Image


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v * 100:+.1f}%"


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# ---- plots -------------------------------------------------------------------------------------------
def plot_precision_recall(evals: Sequence[ModelEvaluation], protocol: str) -> bytes:
    """Precision@j and recall@j for j = 1..len(curve), one line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for e in evals:
        for ax, metric in zip(axes, ("precision", "recall"), strict=True):
            ys = e.curve.get(metric, [])
            ax.plot(range(1, len(ys) + 1), ys, marker=".", label=e.model)
    for ax, metric in zip(axes, ("precision", "recall"), strict=True):
        ax.set_xlabel("k")
        ax.set_title(f"{metric}@k ({protocol})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _png(fig)


def plot_popularity_bias(evals: Sequence[ModelEvaluation], protocol: str) -> bytes:
    """Mean popularity percentile and long-tail share of recommended items per model."""
    names = [e.model for e in evals]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in (
        (axes[0], "popularity_bias", "mean popularity percentile"),
        (axes[1], "long_tail_share", "long-tail share"),
    ):
        ax.bar(names, [e.metrics.get(key, float("nan")) for e in evals], color="tab:orange")
        ax.set_ylim(0, 1)
        ax.set_title(f"{title} ({protocol})")
        ax.tick_params(axis="x", rotation=30)
    return _png(fig)


def plot_segments(evals: Sequence[ModelEvaluation], protocol: str) -> bytes | None:
    """NDCG@k per user group, one panel per segment, one bar per model in each group."""
    segments = sorted({s for e in evals for s, means in e.segments.items() if means})
    if not segments:
        return None
    fig, axes = plt.subplots(1, len(segments), figsize=(4 * len(segments), 3.2), squeeze=False)
    width = 0.8 / max(len(evals), 1)
    for ax, seg in zip(axes[0], segments, strict=True):
        groups = _groups(evals, seg)
        for j, e in enumerate(evals):
            xs = [i + j * width for i in range(len(groups))]
            ax.bar(xs, [e.segments.get(seg, {}).get(g, 0.0) for g in groups], width, label=e.model)
        ax.set_xticks([i + width * (len(evals) - 1) / 2 for i in range(len(groups))], groups)
        ax.set_title(f"NDCG@{evals[0].k} by {seg} ({protocol})")
        ax.tick_params(axis="x", rotation=30)
    axes[0][0].legend(fontsize=8)
    return _png(fig)


# ---- blocks ------------------------------------------------------------------------------------------
def metric_table(evals: Sequence[ModelEvaluation], columns: Sequence[tuple[str, str]]) -> Table:
    k = evals[0].k if evals else 10
    present = [
        (t.format(k=k), m.format(k=k))
        for t, m in columns
        if any(m.format(k=k) in e.metrics for e in evals)
    ]
    header = ["model", *[t for t, _ in present], "fit s", "score s"]
    rows = [
        [
            e.model,
            *[fmt(e.metrics.get(m)) for _, m in present],
            fmt(e.fit_seconds, 2),
            fmt(e.score_seconds, 2),
        ]
        for e in evals
    ]
    return Table(header, rows)


def lift_table(evals: Sequence[ModelEvaluation]) -> Table:
    keys = [m for m in evals[0].lift] if evals else []
    return Table(["model", *keys], [[e.model, *[_pct(e.lift.get(m)) for m in keys]] for e in evals])


def segment_tables(evals: Sequence[ModelEvaluation]) -> list[Block]:
    blocks: list[Block] = []
    segments = sorted({s for e in evals for s, means in e.segments.items() if means})
    for seg in segments:
        groups = _groups(evals, seg)
        counts = next(
            (e.segment_counts.get(seg, {}) for e in evals if e.segment_counts.get(seg)), {}
        )
        header = ["model", *[f"{g} (n={counts.get(g, 0)})" for g in groups], "gap"]
        rows = [
            [
                e.model,
                *[fmt(e.segments.get(seg, {}).get(g)) for g in groups],
                fmt(e.metrics.get(f"ndcg_gap_{seg}")),
            ]
            for e in evals
        ]
        blocks += [Heading(f"NDCG@{evals[0].k} by {seg}", 4), Table(header, rows)]
    return blocks


def uncertainty_blocks(evals: Sequence[ModelEvaluation], k: int) -> list[Block]:
    """Each model's NDCG@k difference to the best one, with a paired bootstrap interval."""
    metric = f"ndcg@{k}"
    compared = compare_to_best(evals, metric)
    if compared is None:
        return []
    best, diffs = compared
    level = next(iter(diffs.values())).level if diffs else DEFAULT_LEVEL
    rows = [
        [
            model,
            f"{d.mean:+.4f}",
            f"[{d.low:+.4f}, {d.high:+.4f}]",
            f"{d.p_value:.3f}",
            "yes" if d.significant else "no",
            str(d.n_users),
        ]
        for model, d in sorted(diffs.items(), key=lambda kv: -kv[1].mean)
    ]
    return [
        Heading(f"Against the best model ({best}), NDCG@{k}", 3),
        Paragraph(
            f"Difference of each model to {best} over the same users, with a paired bootstrap "
            f"{level:.0%} interval (users resampled) and a two-sided p-value; 'significant' means "
            "the interval excludes zero."
        ),
        Table(["model", "difference", f"{level:.0%} interval", "p", "significant", "users"], rows),
    ]


def report_blocks(report: EvaluationReport, *, plots: bool = True) -> list[Block]:
    """The report as blocks: per protocol the split, metric tables, lifts, segments and plots."""
    blocks: list[Block] = [
        Heading(f"Evaluation of {report.dataset}", 1),
        Paragraph(
            f"k = {report.k}. Protocols and metric definitions: docs/evaluation.md. Lift is "
            "relative to the popularity baseline under the same split."
        ),
    ]
    for protocol in report.protocols:
        evals = report.by_protocol(protocol)
        s = report.splits[protocol]
        blocks += [
            Heading(f"Protocol {protocol}", 2),
            Paragraph(
                f"{s.n_users} users, {s.n_items} items; {s.n_train} train and {s.n_test} test "
                f"interactions; {s.n_test_users} users with test items, {s.n_cold_users} of them "
                "cold start (no train interaction; scored by the popularity fallback, "
                "reported separately)."
            ),
            Heading("Accuracy", 3),
            metric_table(evals, HEADLINE),
            Heading("Lift over popularity", 3),
            lift_table(evals),
        ]
        blocks += uncertainty_blocks(evals, report.k)
        if any(e.curve for e in evals):
            blocks += [Heading("Beyond accuracy", 3), metric_table(evals, BEYOND)]
        cold = [e for e in evals if e.cold_start]
        if cold:
            blocks += [
                Heading("Cold-start users (popularity fallback)", 3),
                Table(
                    [
                        "model",
                        f"precision@{report.k}",
                        f"recall@{report.k}",
                        f"NDCG@{report.k}",
                        "users",
                    ],
                    [
                        [
                            e.model,
                            fmt(e.cold_start.get(f"precision@{report.k}")),
                            fmt(e.cold_start.get(f"recall@{report.k}")),
                            fmt(e.cold_start.get(f"ndcg@{report.k}")),
                            fmt(e.cold_start.get("n_users"), 0),
                        ]
                        for e in cold
                        if e.cold_start
                    ],
                ),
            ]
        seg_blocks = segment_tables(evals)
        if seg_blocks:
            blocks += [Heading("Fairness: NDCG per user segment", 3), *seg_blocks]
        if plots and any(e.curve for e in evals):
            blocks.append(
                Image(
                    f"precision and recall against k ({protocol})",
                    plot_precision_recall(evals, protocol),
                )
            )
            blocks.append(
                Image(f"popularity bias ({protocol})", plot_popularity_bias(evals, protocol))
            )
            seg_png = plot_segments(evals, protocol)
            if seg_png is not None:
                blocks.append(Image(f"NDCG per segment ({protocol})", seg_png))
    return blocks


# ---- rendering ---------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
        else:
            out.append(f"![{b.alt}]({b.data_uri})")
        out.append("")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;"
    "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}"
)


def to_html(blocks: Sequence[Block], title: str = "recs evaluation") -> str:
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            parts.append(
                f"<figure><img alt='{html.escape(b.alt)}' src='{b.data_uri}'>"
                f"<figcaption>{html.escape(b.alt)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: EvaluationReport, *, plots: bool = True) -> str:
    return to_markdown(report_blocks(report, plots=plots))


def write_html(report: EvaluationReport, path: str | Path) -> Path:
    """Write the standalone HTML report (plots embedded) to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(report_blocks(report), f"recs evaluation: {report.dataset}"))
    return path
