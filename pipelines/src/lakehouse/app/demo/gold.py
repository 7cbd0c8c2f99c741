"""The gold stage of `lakehouse demo`: gate bronze and silver, dbt build (whose tests are the
gold gate), publish to PostgreSQL, headline KPIs, HTML report. A failing gate stops the stage and
the demo (QualityGateError: non-zero exit) before anything downstream runs. Gates and the build
show a progress bar with the dbt node running now."""

from __future__ import annotations

from functools import partial

from lakehouse.app.demo.context import DemoContext
from lakehouse.app.render import report_html as report
from lakehouse.app.render.gold import gate_table, kpi_table
from lakehouse.core.reconcile import new_run_id
from lakehouse.gold import build as gold_build
from lakehouse.gold import gate, kpis, publish
from lakehouse.gold.dbt import DbtProject


def stage(ctx: DemoContext) -> None:
    console = ctx.console
    console.rule("[bold]Gold (dbt) and data-quality gates")
    project = DbtProject.from_settings(ctx.settings)
    for layer in ("bronze", "silver"):
        with ctx.bars() as b:
            b.current(f"gate {layer}", "contracts")
            on_line = b.dbt(f"gate {layer}")
            rep = ctx.timed(
                f"quality gate {layer}", partial(gate.run_gate, project, layer, ctx.lake, on_line=on_line)
            )
        console.print(gate_table(rep))
        gate.enforce(rep)
    with ctx.bars() as b:
        result = ctx.timed(
            "gold: dbt build + tests",
            lambda: gold_build.build(project, ctx.lake, on_line=b.dbt("dbt build")),
        )
    console.print(gate_table(result.report))
    if not result.ok:
        console.print("\n".join(result.run.output.splitlines()[-25:]), highlight=False, markup=False)
    gate.enforce(result.report)  # the build's data and unit tests are the gold gate
    ctx.run_ids.append(new_run_id())
    ctx.recs.append(gold_build.reconciliation(result, ctx.run_ids[-1]))
    pub = ctx.timed("gold: publish to PostgreSQL", lambda: publish.publish(project))
    where = f"PostgreSQL {ctx.settings.postgres.serving_db}.{pub.schema}"
    console.print(
        f"published {len(pub.tables)} marts ({sum(pub.tables.values()):,} rows) to {where}; "
        f"read by {', '.join(pub.readers)}"
    )
    console.print(kpi_table(ctx.timed("gold: KPIs", lambda: kpis.headline(ctx.settings.postgres)), where))
    path = ctx.timed("gold: HTML report", lambda: report.write(ctx.settings, None, project))
    console.print(f"report: [bold]{path}[/]")
