-- What the BI role (dashboards, BI tools) reads of the serving database beyond `gold`: the health
-- views below. Idempotent; run by the database owner after the ops.* tables exist
-- (lakehouse.core.ops_db.grant_bi_access runs it, then grants the speed layer's window tables that
-- exist). psql can too: psql -v bi_role=lakehouse_bi -f serving_access.sql <serving database>
--
-- ops.* stays closed to the BI role: a view reads its tables with its owner's rights, and these
-- show only the summaries a dashboard needs.

CREATE SCHEMA IF NOT EXISTS health;
COMMENT ON SCHEMA health IS 'Pipeline health for dashboards: summaries of ops.* (read-only for BI)';

-- The last gate run per layer: one row per layer, with the worst status of its checks.
CREATE OR REPLACE VIEW health.last_gate_results AS
WITH last_run AS (
    SELECT DISTINCT ON (layer) layer, run_id
    FROM ops.quality_results
    ORDER BY layer, checked_at DESC, run_id DESC
)
SELECT
    q.layer,
    q.run_id,
    CASE
        WHEN bool_or(q.status IN ('fail', 'error')) THEN 'fail'
        WHEN bool_or(q.status = 'warn') THEN 'warn'
        ELSE 'pass'
    END AS status,
    count(*) AS checks,
    count(*) FILTER (WHERE q.status IN ('fail', 'error')) AS failed_checks,
    coalesce(sum(q.failures), 0)::bigint AS failing_rows,
    max(q.checked_at) AS checked_at
FROM ops.quality_results AS q
JOIN last_run USING (layer, run_id)
GROUP BY q.layer, q.run_id;
COMMENT ON VIEW health.last_gate_results IS 'The last data-quality gate run per layer (from ops.quality_results)';

-- Every run's reconciliation per step and source (ops.reconciliation without its free text).
CREATE OR REPLACE VIEW health.reconciliation AS
SELECT run_id, step, source, target, rows_in, inserted, updated, unchanged, quarantined, duplicates,
       balanced, started_at, finished_at, seconds
FROM ops.reconciliation;
COMMENT ON VIEW health.reconciliation IS 'Reconciliation per run, step and source: rows in = inserted + updated + unchanged + quarantined + duplicates';

-- The last write per layer: bronze, silver and the stream consumers from their reconciliation
-- records, gold from its last publication.
CREATE OR REPLACE VIEW health.layer_freshness AS
SELECT step AS layer, max(finished_at) AS last_write, count(DISTINCT run_id) AS runs
FROM ops.reconciliation
GROUP BY step
UNION ALL
SELECT 'gold (published)', max(published_at), count(*)
FROM ops.publications
HAVING count(*) > 0;
COMMENT ON VIEW health.layer_freshness IS 'Last write per layer (ops.reconciliation, ops.publications)';

-- Silver's quarantine rate: rows quarantined / rows read from bronze.events, over the last run and
-- over every run.
CREATE OR REPLACE VIEW health.quarantine_rate AS
WITH runs AS (
    SELECT run_id, sum(rows_in) AS rows_in, sum(quarantined) AS quarantined, max(finished_at) AS finished_at
    FROM ops.reconciliation
    WHERE step = 'silver' AND source = 'bronze.events'
    GROUP BY run_id
), last_run AS (
    SELECT * FROM runs WHERE rows_in > 0 ORDER BY finished_at DESC LIMIT 1
)
SELECT
    (SELECT quarantined::double precision / rows_in FROM last_run) AS last_run_rate,
    (SELECT sum(quarantined)::double precision / nullif(sum(rows_in), 0) FROM runs) AS overall_rate,
    (SELECT sum(quarantined) FROM runs)::bigint AS quarantined_rows,
    (SELECT sum(rows_in) FROM runs)::bigint AS rows_in,
    (SELECT finished_at FROM last_run) AS last_run_at;
COMMENT ON VIEW health.quarantine_rate IS 'Rows silver quarantined / rows it read from bronze.events (ops.reconciliation)';

GRANT USAGE ON SCHEMA health TO :"bi_role";
GRANT SELECT ON ALL TABLES IN SCHEMA health TO :"bi_role";
