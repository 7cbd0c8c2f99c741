"""`lakehouse sql` on the demo's lake: one-shot in every output format, read-only, time travel by
version and by timestamp, and the interactive shell driven through a pseudo-terminal (pexpect)."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pexpect
import pytest
from tests.serving.conftest import Served

from lakehouse.core.storage import Lake

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _count(served: Served, table: str) -> int:
    return Lake(served.settings).table(table).to_pyarrow_dataset().count_rows()


def test_every_table_by_name_in_three_formats(served: Served) -> None:
    q = "select count(*) as n from silver.events; select count(*) as n from bronze.events"
    as_csv = served.lakehouse("sql", "--format", "csv", q)
    assert as_csv.returncode == 0, as_csv.stdout + as_csv.stderr
    first, second = as_csv.stdout.strip().split("\nn\n")
    assert int(first.split("\n")[1]) == _count(served, "silver.events")
    assert int(second) == _count(served, "bronze.events")
    as_json = served.lakehouse(
        "sql",
        "-f",
        "json",
        "select layer, sum(rows_in) as rows_in from gold.rpt_pipeline_runs group by 1 order by 1",
    )
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert {r["layer"] for r in rows} >= {"bronze", "silver"} and all(r["rows_in"] >= 0 for r in rows)
    table = served.lakehouse("sql", "select count(*) as reconciled from ops.reconciliation")
    assert table.returncode == 0 and "reconciled" in table.stdout and "1 row(s)" in table.stdout
    piped = served.lakehouse("sql", "-f", "csv", stdin="select 41 + 1 as answer;")
    assert piped.stdout.splitlines() == ["answer", "42"]


@pytest.mark.parametrize(
    "statement",
    [
        "drop view silver.events",
        "create table x as select 1",
        "copy (select * from silver.events) to '/tmp/leak.csv'",
        "insert into silver.events select * from silver.events",
        "attach 'other.db'",
        "select 1; delete from silver.events",
        "set enable_external_access = true",
    ],
)
def test_read_only(served: Served, statement: str) -> None:
    r = served.lakehouse("sql", statement)
    assert r.returncode != 0
    assert r.stderr.strip().startswith("error: read-only:"), r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not r.stdout.strip()


def test_bad_sql_is_one_line(served: Served) -> None:
    r = served.lakehouse("sql", "select nope from silver.events")
    assert r.returncode != 0 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    r = served.lakehouse("sql", "--as-of", "last tuesday", "select 1")
    assert r.returncode != 0 and "--as-of" in r.stderr


def test_time_travel_by_version_and_timestamp(served: Served) -> None:
    dt = Lake(served.settings).table("silver.events")
    history = sorted(dt.history(), key=lambda e: e["version"])
    assert len(history) >= 2, "the demo writes silver.events more than once"
    first = history[0]
    v0_rows = Lake(served.settings).table("silver.events", first["version"]).to_pyarrow_dataset().count_rows()
    by_version = served.lakehouse(
        "sql",
        "-f",
        "csv",
        "--version",
        f"silver.events={first['version']}",
        "select count(*) from silver.events",
    )
    assert by_version.returncode == 0, by_version.stdout
    assert int(by_version.stdout.splitlines()[1]) == v0_rows < _count(served, "silver.events")
    when = datetime.fromtimestamp(first["timestamp"] / 1000 + 0.0005, UTC).isoformat()
    by_time = served.lakehouse("sql", "-f", "csv", "--as-of", when, "select count(*) from silver.events")
    assert int(by_time.stdout.splitlines()[1]) == v0_rows
    before = served.lakehouse("sql", "--as-of", "2000-01-01T00:00:00Z", "select count(*) from silver.events")
    assert before.returncode != 0 and "does not exist" in before.stderr


def test_interactive_shell_through_a_pty(served: Served) -> None:
    child = pexpect.spawn(
        str(BIN / "lakehouse"), ["sql"], env=served.env, encoding="utf-8", timeout=120, dimensions=(50, 200)
    )
    try:
        child.expect("lakehouse> ")
        child.sendline(".format csv")
        child.expect("lakehouse> ")
        child.sendline("select count(*) as n")  # a statement over two lines
        child.expect(r"\.\.\.> ")
        child.sendline("from silver.events;")
        child.expect("lakehouse> ")
        rows = list(csv.reader(io.StringIO(child.before.replace("\r\n", "\n"))))
        assert ["n"] in rows and [str(_count(served, "silver.events"))] in rows
        child.sendline("drop view silver.events;")
        child.expect("lakehouse> ")
        assert "read-only" in child.before
        child.sendline(".tables")
        child.expect("lakehouse> ")
        assert "silver.events" in child.before and "gold.rpt_executive_summary" in child.before
        child.sendline(".version silver.events 0")
        child.expect("lakehouse> ")
        child.sendline("select count(*) as n from silver.events;")
        child.expect("lakehouse> ")
        assert _count(served, "silver.events") > int(
            next(
                r for r in csv.reader(io.StringIO(child.before.replace("\r\n", "\n"))) if r and r[0].isdigit()
            )[0]
        )
        child.sendline(".quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
