"""`lakehouse serve` against a real demo: a real server process, a real HTTP client (httpx), the
rows compared with what PostgreSQL holds, ETags against publications, tokens, limits, bad input,
SQL injection (read from PostgreSQL's own statement log), and the snapshot over HTTP."""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from duckdb_extensions import import_extension
from tests.serving.conftest import Served, start_server, stop_server

pytestmark = pytest.mark.slow

DAU = "gold.agg_daily_active_users"
EPM = "realtime.events_per_minute"


def _pg_rows(served: Served, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with served.pg() as conn:
        return conn.execute(query, params or []).fetchall()


def test_list_datasets_describes_gold_and_realtime(served: Served) -> None:
    with served.client() as c:
        r = c.get("/datasets")
    assert r.status_code == 200, r.text
    doc = r.json()
    by_name = {d["name"]: d for d in doc["datasets"]}
    marts = {
        f"gold.{t}" for (t,) in _pg_rows(served, "SELECT tablename FROM pg_tables WHERE schemaname = 'gold'")
    }
    assert marts and marts <= set(by_name)
    assert EPM in by_name and "realtime.stream_offsets" not in by_name
    (pub_id, tables) = _pg_rows(
        served, "SELECT publication_id, tables FROM ops.publications ORDER BY 1 DESC LIMIT 1"
    )[0]
    dau = by_name[DAU]
    assert doc["publication_id"] == pub_id
    assert dau["version"] == f"g{pub_id}"
    assert (
        dau["rows"]
        == tables["agg_daily_active_users"]
        == _pg_rows(served, f"SELECT count(*) FROM {DAU}")[0][0]
    )
    assert dau["primary_key"] == ["event_date"] and dau["time_column"] == "event_date"
    assert [c["name"] for c in dau["columns"]] == ["event_date", "dau_count", "updated_at"]
    assert dau["age_seconds"] >= 0
    assert by_name[EPM]["rows"] == _pg_rows(served, f"SELECT count(*) FROM {EPM}")[0][0]


def test_read_filters_columns_order_and_pages(served: Served) -> None:
    expected = _pg_rows(
        served,
        f"SELECT window_start, event_count FROM {EPM} WHERE event_type = ANY(%s) ORDER BY event_count DESC, window_start, event_type",
        [["click", "login"]],
    )
    assert len(expected) > 3
    got: list[tuple[Any, ...]] = []
    url: str | None = "/datasets/" + EPM
    params: dict[str, Any] | None = {
        "event_type": ["click", "login"],
        "columns": "window_start,event_count",
        "order": "-event_count",
        "limit": 3,
    }
    pages = 0
    with served.client() as c:
        while url:
            r = c.get(url, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert [col["name"] for col in body["columns"]] == ["window_start", "event_count"]
            got += [(row["window_start"], row["event_count"]) for row in body["rows"]]
            url, params, pages = body["next"], None, pages + 1
            if url:
                assert r.headers["link"] == f'<{url}>; rel="next"'
    assert pages == -(-len(expected) // 3)
    assert got == [(w.isoformat().replace("+00:00", "Z"), n) for w, n in expected]


def test_date_range(served: Served) -> None:
    days = [d for (d,) in _pg_rows(served, f"SELECT event_date FROM {DAU} ORDER BY 1")]
    lo, hi = days[1], days[-2]
    with served.client() as c:
        r = c.get(f"/datasets/{DAU}", params={"from": lo.isoformat(), "to": hi.isoformat()})
    assert r.status_code == 200, r.text
    assert [row["event_date"] for row in r.json()["rows"]] == [d.isoformat() for d in days if lo <= d <= hi]
    with served.client() as c:
        r = c.get(f"/datasets/{DAU}", params={"from": hi.isoformat(), "to": lo.isoformat()})
    assert r.status_code == 200 and r.json()["rows"] == []  # an empty range is no error


def test_formats_carry_the_same_rows(served: Served) -> None:
    expected = _pg_rows(served, f"SELECT event_date, dau_count FROM {DAU} ORDER BY event_date")
    q = {"columns": "event_date,dau_count"}
    with served.client() as c:
        as_json = c.get(f"/datasets/{DAU}", params=q)
        as_csv = c.get(f"/datasets/{DAU}", params={**q, "format": "csv"})
        as_arrow = c.get(
            f"/datasets/{DAU}", params=q, headers={"Accept": "application/vnd.apache.arrow.stream"}
        )
        as_parquet = c.get(f"/datasets/{DAU}", params={**q, "format": "parquet"})
        refused = c.get(f"/datasets/{DAU}", headers={"Accept": "application/xml"})
    assert as_json.headers["content-type"] == "application/json"
    assert [(r["event_date"], r["dau_count"]) for r in as_json.json()["rows"]] == [
        (d.isoformat(), n) for d, n in expected
    ]
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(as_csv.text))) == [["event_date", "dau_count"]] + [
        [d.isoformat(), str(n)] for d, n in expected
    ]
    arrow = ipc.open_stream(as_arrow.content).read_all()
    parquet = pq.read_table(io.BytesIO(as_parquet.content))
    for table in (arrow, parquet):
        assert table.schema.field("event_date").type == pa.date32()
        assert table.schema.field("dau_count").type == pa.int64()
        assert (
            list(zip(table["event_date"].to_pylist(), table["dau_count"].to_pylist(), strict=True))
            == expected
        )
    assert as_json.headers["etag"] != as_csv.headers["etag"]  # one ETag per representation
    assert refused.status_code == 406 and refused.json()["error"]


def test_etag_304_and_a_new_publication(served: Served) -> None:
    with served.client() as c:
        first = c.get(f"/datasets/{DAU}", params={"limit": 5})
        etag = first.headers["etag"]
        assert first.headers["cache-control"].startswith("private, max-age=")
        again = c.get(f"/datasets/{DAU}", params={"limit": 5}, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = c.get(f"/datasets/{DAU}", params={"limit": 4}, headers={"If-None-Match": etag})
        assert other.status_code == 200 and other.headers["etag"] != etag
        rt = c.get(f"/datasets/{EPM}")
        assert rt.headers["cache-control"] == "private, no-cache"
        assert c.get(f"/datasets/{EPM}", headers={"If-None-Match": rt.headers["etag"]}).status_code == 304
    published = served.lakehouse("gold", "publish")
    assert published.returncode == 0, published.stdout + published.stderr
    with served.client() as c:
        after = c.get(f"/datasets/{DAU}", params={"limit": 5}, headers={"If-None-Match": etag})
        assert after.status_code == 200 and after.headers["etag"] != etag
        (pub_id,) = _pg_rows(served, "SELECT max(publication_id) FROM ops.publications")[0]
        assert after.json()["version"] == f"g{pub_id}"
        assert (
            c.get(
                f"/datasets/{DAU}", params={"limit": 5}, headers={"If-None-Match": after.headers["etag"]}
            ).status_code
            == 304
        )


def test_tokens(served: Served) -> None:
    with served.client(token=None) as c:
        r = c.get("/datasets")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with served.client(token="lh_not-a-token") as c:
        assert c.get(f"/datasets/{DAU}").status_code == 401
    made = served.lakehouse("token", "create", "short-lived")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    with served.pg() as conn:
        stored = conn.execute("SELECT token_sha256 FROM ops.api_tokens WHERE name = 'short-lived'").fetchone()
    assert stored is not None and token.encode() not in bytes(stored[0]) and len(bytes(stored[0])) == 32
    with served.client(token=token) as c:
        ok = c.get(f"/datasets/{DAU}")
        assert ok.status_code == 200
        cached = {"If-None-Match": ok.headers["etag"]}
        assert c.get(f"/datasets/{DAU}", headers=cached).status_code == 304  # the verdict is cached
        assert served.lakehouse("token", "revoke", "short-lived").returncode == 0
        r = c.get(f"/datasets/{DAU}")
        assert r.status_code == 401 and "revoked" in r.json()["error"]
        assert c.get(f"/datasets/{DAU}", headers=cached).status_code == 401  # and forgotten on revoke


BAD = [
    ("/datasets/gold.nope", {}, 404),
    (f"/datasets/{DAU}", {"limit": "10001"}, 400),
    (f"/datasets/{DAU}", {"limit": "0"}, 400),
    (f"/datasets/{DAU}", {"limit": "ten"}, 400),
    (f"/datasets/{DAU}", {"offset": "-3"}, 400),
    (f"/datasets/{DAU}", {"columns": "event_date,nope"}, 400),
    (f"/datasets/{DAU}", {"columns": ""}, 400),
    (f"/datasets/{DAU}", {"order": "-nope"}, 400),
    (f"/datasets/{DAU}", {"from": "2026-02-30"}, 400),
    (f"/datasets/{DAU}", {"to": "yesterday"}, 400),
    (f"/datasets/{DAU}", {"event_date": "2026-11-01T00:00:00"}, 400),
    (f"/datasets/{DAU}", {"dau_count": "5"}, 400),
    (f"/datasets/{DAU}", {"unknown": "x"}, 400),
    (f"/datasets/{DAU}", {"limit": ["1", "2"]}, 400),
    (f"/datasets/{DAU}", {"format": "xlsx"}, 400),
    (f"/datasets/{EPM}", {"event_type": "a\x00b"}, 400),
    (f"/datasets/{EPM}", {"window_start": "2026-11-01T25:00:00Z"}, 400),
    ("/datasets/realtime.rejected_events", {"from": "2026-11-01"}, 400),
    ("/snapshots/../../etc/passwd", {}, 404),
    ("/snapshots/20260101T000000000000-00000000/gold.x.parquet", {}, 404),
]


@pytest.mark.parametrize(("path", "params", "status"), BAD)
def test_bad_input_is_a_4xx_with_one_line(
    served: Served, path: str, params: dict[str, Any], status: int
) -> None:
    with served.client() as c:
        r = c.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["error"] and "\n" not in body["error"]


def test_no_filter_value_reaches_sql_as_text(served: Served) -> None:
    """Hostile values come back as no rows (or a 400), and PostgreSQL's own statement log shows
    each one only among the bind parameters, never in a statement's text."""
    marker = f"zz{uuid.uuid4().hex[:10]}"
    hostile = [
        f"{marker}' OR '1'='1",
        f"{marker}'; DROP TABLE gold.agg_daily_active_users; --",
        f'{marker}" UNION SELECT usename FROM pg_user --',
        f"{marker}$$; SELECT pg_sleep(5); $$",
    ]
    log_before = served.pg_log.stat().st_size
    with served.client() as c:
        for value in hostile:
            r = c.get(f"/datasets/{EPM}", params={"event_type": value})
            assert r.status_code == 200 and r.json()["rows"] == [], r.text
        r = c.get(f"/datasets/{EPM}", params={"window_start": f"{marker}' OR 1=1"})
        assert r.status_code == 400
    assert _pg_rows(served, "SELECT to_regclass('gold.agg_daily_active_users') IS NOT NULL")[0][0]
    time.sleep(0.5)
    with open(served.pg_log, "rb") as fh:
        fh.seek(log_before)
        log = fh.read().decode("utf-8", "replace")
    statements = [ln for ln in log.splitlines() if "statement:" in ln or "execute" in ln]
    parameters = [ln for ln in log.splitlines() if "parameters:" in ln]
    assert any("events_per_minute" in ln for ln in statements), "the API's statements were not logged"
    assert not [ln for ln in statements if marker in ln]
    assert sum(marker in ln for ln in parameters) >= len(hostile)


def test_query_time_limit(served: Served, tmp_path: Any) -> None:
    """A read blocked longer than serving.query_timeout_ms is cut: 503 with one line, and the
    server answers the next request."""
    port = int(served.url.rsplit(":", 1)[1]) + 0
    from lakehouse.services.process import free_port

    port = free_port({port})
    server = start_server(served.env, port, tmp_path / "serve.log", "--set", "serving.query_timeout_ms=300")
    hold = threading.Event()
    locked = threading.Event()

    def lock_table() -> None:
        with served.pg() as conn, conn.transaction():
            conn.execute(f"LOCK TABLE {DAU} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            hold.wait(20)

    t = threading.Thread(target=lock_table)
    t.start()
    try:
        assert locked.wait(10)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {served.token}"}
        ) as c:
            start = time.perf_counter()
            r = c.get(f"/datasets/{DAU}")
            took = time.perf_counter() - start
            assert r.status_code == 503 and "300 ms" in r.json()["error"], r.text
            assert took < 5
            hold.set()
            t.join(10)
            assert c.get(f"/datasets/{DAU}").status_code == 200
    finally:
        hold.set()
        t.join(10)
        stop_server(server)


def test_snapshot_served_and_read_by_duckdb_over_http(served: Served) -> None:
    made = served.lakehouse("snapshot", "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    with served.client() as c:
        manifest = c.get("/snapshots").json()
    entries = {t["table"]: t for t in manifest["tables"]}
    assert {"silver.events", "gold.agg_daily_active_users"} <= set(entries)
    ev = entries["silver.events"]
    con = duckdb.connect()
    import_extension("httpfs", con=con)
    con.execute("LOAD httpfs")
    con.execute(f"CREATE SECRET api (TYPE http, BEARER_TOKEN '{served.token}', SCOPE '{served.url}')")
    (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{ev['url']}')").fetchone()  # type: ignore[misc]
    (latest,) = con.execute(f"SELECT count(*) FROM read_parquet('{ev['latest_url']}')").fetchone()  # type: ignore[misc]
    lake_rows = served.lakehouse("sql", "-f", "csv", "select count(*) from silver.events")
    assert n == latest == ev["rows"] == int(lake_rows.stdout.splitlines()[1])
    with served.client() as c:
        head = c.get(ev["url"], headers={"Range": "bytes=0-3"})
        assert head.status_code == 206 and head.content == b"PAR1"
        assert head.headers["etag"] == ev["etag"]
        assert c.get(ev["url"], headers={"If-None-Match": ev["etag"]}).status_code == 304
    with served.client(token=None) as c:
        assert c.get(ev["url"]).status_code == 401


def test_metrics_export_quality_and_reconciliation(served: Served) -> None:
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert "lakehouse_health_up 1.0" in text
    for layer in ("bronze", "silver", "gold"):
        assert f'lakehouse_quality_gate_passed{{layer="{layer}"}} 1.0' in text
    assert 'lakehouse_reconciliation_balanced{source="bronze.events",step="silver"} 1.0' in text
    assert 'lakehouse_api_requests_total{route="dataset",status="200"}' in text
