"""The Spark image's entry file: `spark-submit` takes a Python application as a .py file, and the
SparkApplications (dags/k8s/spark-application.yaml) run the package's command line through this
one, e.g. `spark-submit lakehouse_main.py spark silver --env dev`. Copied to
/opt/spark/work-dir/lakehouse_main.py by the Dockerfile beside it."""

from lakehouse.app.cli import main

main()
