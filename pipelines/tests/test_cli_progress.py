"""Progress of long steps: dbt's own console lines move the bar node by node and name the model
or test running now; the finished bar is full; --json (quiet) draws nothing."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, TextColumn

from lakehouse.app.cli.progress import Bars, bars

# Lines as dbt-core 1.11 prints them during `dbt build` (timestamps included).
DBT_LINES = [
    "14:02:11  Running with dbt=1.11.2",
    "14:02:13  1 of 3 START sql view model main.stg_silver__events ......................... [RUN]",
    "14:02:13  1 of 3 OK created sql view model main.stg_silver__events .................... [OK in 0.11s]",
    "14:02:13  2 of 3 START test not_null_stg_silver__events_event_id ....................... [RUN]",
    "14:02:14  2 of 3 PASS not_null_stg_silver__events_event_id ............................. [PASS in 0.05s]",
    "14:02:14  3 of 3 START sql table model main.agg_daily_active_users ...................... [RUN]",
]


def _progress() -> tuple[Progress, Console]:
    console = Console(record=True, force_terminal=True, width=120)
    return Progress(
        TextColumn("{task.description} {task.completed}/{task.total} {task.fields[current]}"), console=console
    ), console


def test_dbt_lines_move_the_bar_and_name_the_current_node() -> None:
    progress, _ = _progress()
    b = Bars(progress)
    feed = b.dbt("dbt build")
    task = progress.tasks[b.tasks["dbt build"]]
    seen = []
    for line in DBT_LINES:
        feed(line)
        seen.append((task.completed, task.total, task.fields["current"]))
    assert seen[0] == (0, 1, "")  # dbt's banner is not a node
    assert seen[1] == (0, 3, "main.stg_silver__events")
    assert seen[2] == (1, 3, "main.stg_silver__events")
    assert seen[3] == (1, 3, "not_null_stg_silver__events_event_id")
    assert seen[4] == (2, 3, "not_null_stg_silver__events_event_id")
    assert seen[5] == (2, 3, "main.agg_daily_active_users")
    b.done("dbt build")
    assert (task.completed, task.total) == (3, 3)


def test_job_hooks_plan_and_advance_and_the_bar_ends_full() -> None:
    progress, console = _progress()
    b = Bars(progress)
    with progress:
        b.hooks.plan("optimize", 4)
        b.current("optimize", "silver.events")
        b.hooks.advance("optimize", 3)
        b.finish()
    task = progress.tasks[b.tasks["optimize"]]
    assert (task.completed, task.total) == (3, 3)
    assert "optimize 3/3 silver.events" in console.export_text()


def test_quiet_draws_nothing(capsys) -> None:  # type: ignore[no-untyped-def]
    with bars(quiet=True) as b:
        b.plan("gate", 2)
        b.advance("gate", 2)
    assert capsys.readouterr().out == ""
