# The dev-shaped run (pipelines/tests/test_dev_shaped_run.py, pytest marker `dev_shaped`); included
# by the root Makefile, so $(PYTEST) and the set-up targets come from there: it needs the Ansible
# and dbt virtualenvs and the Kafka jars, nothing else of PIPELINE_TEST_DEPS.
# `make test` runs its short version instead: the README's dev command in test_readme_commands.py.

.PHONY: test-dev-shaped

test-dev-shaped: setup setup-ansible setup-dbt jars-kafka ## environments/dev/pipeline.yaml on loopback services the platform's tasks made: the whole flow, isolation, BI reads, every Grafana query, bad input
	cd pipelines && LAKEHOUSE_TESTS_STRICT=1 $(PYTEST) -q -m dev_shaped tests/test_dev_shaped_run.py
