# The dev-shaped run (pipelines/tests/test_dev_shaped_run.py, pytest marker `dev_shaped`); included
# by the root Makefile, so $(VENV), $(PYTEST), `setup` and PIPELINE_TEST_DEPS come from there.
# `make test` runs its short version instead: the README's dev command in test_readme_commands.py.

.PHONY: test-dev-shaped

test-dev-shaped: setup $(PIPELINE_TEST_DEPS) ## environments/dev/pipeline.yaml on loopback services the platform's tasks made: the whole flow, isolation, BI reads, every Grafana query, bad input
	cd pipelines && LAKEHOUSE_TESTS_STRICT=1 $(PYTEST) -q -m dev_shaped tests/test_dev_shaped_run.py
