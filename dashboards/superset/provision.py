"""Provision Superset as code, idempotently, in one process of .venv-superset/bin/python:

    python dashboards/superset/provision.py --database-uri URI --admin-password-file FILE

1. migrate Superset's metadata database to this version's schema (`superset db upgrade`);
2. create or refresh roles and permissions (`superset init`);
3. create the `admin` user, or reset its password to the one in FILE;
4. import the asset bundle rendered from dashboards/lakehouse-overview.yaml: the database (the
   read-only BI role, with LAKEHOUSE_BI_PASSWORD when set), one dataset and one chart per panel,
   the dashboard. Everything is overwritten; charts of the dashboard that the definition no
   longer has are deleted.

One process instead of four `superset` commands: each of them loads the whole application.
Settings come from SUPERSET_CONFIG_PATH (dashboards/superset/superset_config.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dashboards/render.py

import render

ADMIN = "admin"


def _init_stamp(db: Any, version: str | None = None) -> str | None:
    """Read (or, given a version, write) the Superset version `init` last ran for."""
    from sqlalchemy import text

    db.session.execute(
        text("CREATE TABLE IF NOT EXISTS lakehouse_provisioning (key text PRIMARY KEY, value text)")
    )
    if version is not None:
        db.session.execute(
            text(
                "INSERT INTO lakehouse_provisioning VALUES ('init_version', :v) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            {"v": version},
        )
    row = db.session.execute(
        text("SELECT value FROM lakehouse_provisioning WHERE key = 'init_version'")
    ).first()
    db.session.commit()
    return row[0] if row else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--database-uri", required=True, help="SQLAlchemy URI of the serving database as the BI role"
    )
    ap.add_argument("--admin-password-file", type=Path, required=True)
    ap.add_argument("--definition", type=Path, default=render.DEFINITION)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        dashboard = render.load(args.definition)
    except render.DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bundle = render.superset_bundle(dashboard, args.database_uri)

    from flask import g
    from flask_migrate import upgrade
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        # Superset's models can be imported only once the application exists.
        from superset import appbuilder, db, security_manager
        from superset.commands.importers.v1.assets import ImportAssetsCommand
        from superset.connectors.sqla.models import SqlaTable
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice

        print("==> superset: metadata schema (db upgrade)", flush=True)
        upgrade()
        # `superset init` is needed once per Superset version (it takes a while): the stamp in
        # lakehouse_provisioning, a table of ours in the metadata database, says which version it last ran for.
        version = app.config["VERSION_STRING"]
        admin_role = security_manager.find_role("Admin")
        if _init_stamp(db) != version or admin_role is None or not admin_role.permissions:
            print(f"==> superset: roles and permissions (init, Superset {version})", flush=True)
            appbuilder.add_permissions(update_perms=True)
            security_manager.sync_role_definitions()
            _init_stamp(db, version)
        else:
            print(f"==> superset: roles and permissions are those of Superset {version} already", flush=True)

        password = args.admin_password_file.read_text().strip()
        user = security_manager.find_user(username=ADMIN)
        if user is None:
            role = security_manager.find_role("Admin")
            if not security_manager.add_user(ADMIN, "Lakehouse", "Admin", "admin@localhost", role, password):
                print("error: superset: could not create the admin user", file=sys.stderr)
                return 1
        else:
            security_manager.reset_password(user.id, password)

        dashboard_uuid = render.asset_uuid(dashboard, "dashboard")
        before = db.session.query(Dashboard).filter_by(uuid=dashboard_uuid).one_or_none()
        old_charts = {str(s.uuid): s.id for s in before.slices} if before else {}

        print(f"==> superset: import {len(dashboard.panels)} charts and the dashboard", flush=True)
        db_file = next(name for name in bundle if name.startswith("databases/"))
        passwords = {db_file: pw} if (pw := os.environ.get("LAKEHOUSE_BI_PASSWORD")) else {}
        g.user = security_manager.find_user(
            username=ADMIN
        )  # the importer checks its rights and owns the assets
        ImportAssetsCommand(bundle, passwords=passwords).run()

        new_charts = {render.asset_uuid(dashboard, "chart", p.key) for p in dashboard.panels}
        for chart_uuid, chart_id in old_charts.items():
            if chart_uuid in new_charts:
                continue
            chart = db.session.get(Slice, chart_id)
            dataset = db.session.get(SqlaTable, chart.datasource_id) if chart else None
            if chart:
                db.session.delete(chart)
            prefix = f"{dashboard.uid.replace('-', '_')}__"
            if dataset and dataset.table_name.startswith(prefix):
                db.session.delete(dataset)
            print(f"    removed chart {chart_uuid} (no longer in {args.definition.name})")
        db.session.commit()
        imported = db.session.query(Dashboard).filter_by(uuid=dashboard_uuid).one()
        print(f"    dashboard /superset/dashboard/{imported.slug}/ with {len(imported.slices)} charts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
