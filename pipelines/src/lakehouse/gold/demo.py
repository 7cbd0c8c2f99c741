"""The gold stage of `lakehouse demo`: gate bronze and silver, dbt build (whose tests are the
gold gate), publish to PostgreSQL, headline KPIs, HTML report. A failing gate stops the stage and
the demo (QualityGateError: non-zero exit) before anything downstream runs."""

from __future__ import annotations

from functools import partial

from lakehouse.demo import DemoContext
from lakehouse.gold import build as gold_build
from lakehouse.gold import kpis, publish, report
from lakehouse.gold.cli import kpi_table
from lakehouse.quality import gate
from lakehouse.quality.cli import report_table
from lakehouse.reconcile import new_run_id


def stage(ctx: DemoContext) -> None:
    console = ctx.console
    console.rule("[bold]Gold (dbt) and data-quality gates")
    for layer in ("bronze", "silver"):
        rep = ctx.timed(f"quality gate {layer}", partial(gate.run_gate, ctx.settings, layer, ctx.lake))
        console.print(report_table(rep))
        gate.enforce(rep)
    result = ctx.timed("gold: dbt build + tests", partial(gold_build.build, ctx.settings, ctx.lake))
    console.print(report_table(result.report))
    if not result.ok:
        console.print("\n".join(result.run.output.splitlines()[-25:]), highlight=False, markup=False)
    gate.enforce(result.report)  # the build's data and unit tests are the gold gate
    ctx.run_ids.append(new_run_id())
    ctx.recs.append(gold_build.reconciliation(result, ctx.run_ids[-1]))
    pub = ctx.timed("gold: publish to PostgreSQL", partial(publish.publish, ctx.settings))
    console.print(
        f"published {len(pub.tables)} marts ({sum(pub.tables.values()):,} rows) to PostgreSQL "
        f"{ctx.settings.postgres.serving_db}.gold; BI role {publish.bi_role()} reads them"
    )
    console.print(kpi_table(ctx.timed("gold: KPIs", partial(kpis.headline, ctx.settings))))
    path = ctx.timed("gold: HTML report", partial(report.write, ctx.settings))
    console.print(f"report: [bold]{path}[/]")
