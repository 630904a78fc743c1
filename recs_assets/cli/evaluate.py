"""``recs eval``: evaluate registered models on a Phase 1 source under one protocol.

    recs eval --source movielens:../shared/data/ml-100k --protocol stratified \\
        --models popularity,ease --json out.json [--html report.html]

Same code path as the ``evaluation_report`` asset (``runner.evaluate_models``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from recs_assets.core.evaluation.protocols import PROTOCOLS
from recs_assets.core.evaluation.runner import (
    EvaluationReport,
    SideTables,
    evaluate_models,
    resolve_models,
)
from recs_assets.core.evaluation.uncertainty import paired_difference
from recs_assets.core.phase1.schema import Phase1Tables


def load_source(spec: str) -> Phase1Tables:
    """The validated Phase 1 tables of ``spec`` (``movielens:DIR``, ``files:DIR``, ``synthetic``):
    loaded by ``Phase1Source`` and validated as the raw assets do, so ``recs eval`` sees the
    same frames as the ``evaluation_report`` asset."""
    import pandas as pd

    from recs_assets.core.phase1.validation import validate_tables
    from recs_assets.raw.source_resource import Phase1Source

    try:
        source = Phase1Source.from_spec(spec)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--source") from None
    result = validate_tables(source.load(), pd.Timestamp.now(tz="UTC"), source.contract())
    rejected = len(result.quarantine)
    if rejected:
        click.echo(f"{spec}: {rejected} rows quarantined by validation", err=True)
    return result.tables


def _json_number(v: float) -> float | None:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def paired_json(report: EvaluationReport, protocol: str) -> dict[str, dict[str, object]]:
    """``"a - b"`` -> the paired bootstrap difference of NDCG@k per user (mean, 95% interval,
    p-value, users) for every pair of models, ``a`` listed before ``b``."""
    evaluations = list(report.by_protocol(protocol))
    metric = f"ndcg@{report.k}"
    out: dict[str, dict[str, object]] = {}
    for i, a in enumerate(evaluations):
        for b in evaluations[i + 1 :]:
            try:
                d = paired_difference(a, b, metric)
            except ValueError:  # no user with a value for both: nothing to pair
                d = None
            if d is not None:
                out[f"{a.model} - {b.model}"] = {
                    "metric": metric,
                    "mean": _json_number(d.mean),
                    "low": _json_number(d.low),
                    "high": _json_number(d.high),
                    "p_value": _json_number(d.p_value),
                    "n_users": d.n_users,
                    "level": d.level,
                }
    return out


def report_json(report: EvaluationReport, protocol: str, paired: bool = True) -> dict[str, object]:
    """The ``--json`` document: ``{"protocol", "dataset", "k", "split", "models": {name: {...}},
    "paired": {"a - b": {...}}, "fit": {name: {...}}}`` (``paired_json``; ``fit``: what the
    models that report on their own fit say of it, e.g. the ranker's prior weights and trees).

    Non-finite values (an undefined metric, e.g. a gap with one group) are written as null.
    """
    split = report.splits[protocol]
    return {
        "protocol": protocol,
        "dataset": report.dataset,
        "k": report.k,
        "split": {
            "n_users": split.n_users,
            "n_items": split.n_items,
            "n_train": split.n_train,
            "n_test": split.n_test,
            "n_test_users": split.n_test_users,
            "n_cold_users": split.n_cold_users,
        },
        "models": {
            e.model: {m: _json_number(v) for m, v in e.flat().items()}
            for e in report.by_protocol(protocol)
        },
        "paired": paired_json(report, protocol) if paired else {},
        "fit": {
            e.model: {n: _json_number(v) for n, v in e.fit_summary.items()}
            for e in report.by_protocol(protocol)
            if e.fit_summary
        },
    }


@click.command("eval")
@click.option("--source", required=True, help="KIND:PATH of a Phase 1 source, e.g. movielens:DIR")
@click.option(
    "--protocol",
    type=click.Choice(sorted(PROTOCOLS)),
    default="stratified",
    show_default=True,
    help="evaluation protocol (see docs/evaluation.md)",
)
@click.option(
    "--models",
    default="popularity",
    show_default=True,
    help="comma-separated registry names, or 'all'",
)
@click.option(
    "--k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="List length."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the metrics as JSON here.",
)
@click.option(
    "--paired/--no-paired",
    default=True,
    show_default=True,
    help="Paired bootstrap interval of NDCG@k for every pair of the models (n(n-1)/2 pairs).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the standalone HTML report here",
)
def eval_command(
    source: str,
    protocol: str,
    models: str,
    k: int,
    json_path: Path | None,
    html_path: Path | None,
    paired: bool,
) -> None:
    """Evaluate MODELS on SOURCE under PROTOCOL and print the metric table."""
    try:
        names = resolve_models([m.strip() for m in models.split(",") if m.strip()])
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--models") from None
    tables = load_source(source)
    report = evaluate_models(
        names,
        tables.interactions,
        [protocol],
        SideTables(users=tables.users, items=tables.items),
        k=k,
        dataset=source,
        progress=lambda msg: click.echo(f"evaluating {msg}", err=True),
    )
    doc = report_json(report, protocol, paired)
    for name, values in doc["models"].items():  # type: ignore[union-attr]
        shown = ", ".join(
            f"{m} {values[m]:.4f}"
            for m in (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}", "auc")
            if values.get(m) is not None
        )
        click.echo(f"{name}: {shown}")
    for name, summary in doc["fit"].items():  # type: ignore[union-attr]
        # what a model says of its own fit, e.g. the ranker's prior weights and trees kept
        shown = ", ".join(f"{n} {'n/a' if v is None else f'{v:.4g}'}" for n, v in summary.items())
        click.echo(f"{name} fit: {shown}")
    for pair, d in doc["paired"].items():  # type: ignore[union-attr]
        verdict = "interval excludes 0" if d["low"] > 0 or d["high"] < 0 else "includes 0"
        click.echo(
            f"{pair}: {d['metric']} {d['mean']:+.4f}, {d['level']:.0%} paired bootstrap interval "
            f"[{d['low']:+.4f}, {d['high']:+.4f}] ({verdict}), p={d['p_value']:.3f}, "
            f"{d['n_users']} users"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2))
        click.echo(f"wrote {json_path}", err=True)
    if html_path is not None:
        from recs_assets.core.evaluation.report import write_html

        write_html(report, html_path)
        click.echo(f"wrote {html_path}", err=True)
