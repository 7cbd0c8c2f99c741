"""Superset's settings on the laptop. `dashboards/local.py` points SUPERSET_CONFIG_PATH here and
sets the two variables below; nothing in this file is a secret."""

import os
from pathlib import Path

# Random, made once per state folder by dashboards/local.py (signs sessions, encrypts credentials).
SECRET_KEY = Path(os.environ["LAKEHOUSE_SUPERSET_SECRET_FILE"]).read_text().strip()
# Superset's own metadata: a database of the project's local PostgreSQL.
SQLALCHEMY_DATABASE_URI = os.environ["LAKEHOUSE_SUPERSET_METADATA_URI"]

# Every refresh (10 s) runs the charts' queries: no result cache between them.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
