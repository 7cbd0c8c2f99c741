# The Spark image (pipelines/image/spark/Dockerfile), built with podman; included by the root
# Makefile after pipelines/image/image.mk, whose pipeline image it starts from.
#
#   make image-spark                   on a Spark base built offline (local mode only)
#   make image-spark SPARK_BASE=docker.io/apache/spark:4.1.1-scala2.13-java17-ubuntu   for the cluster
#   make image-spark-push IMAGE_REGISTRY=registry.example:5000
#
# The context holds only the verified jar bundle and spark-defaults.conf; without SPARK_BASE the
# base is built from pipelines/image/spark/base.Containerfile with pyspark's sdist, downloaded
# against the hash pipelines/uv.lock pins.

SPARK_IMAGE_REPOSITORY ?= ampere-lakehouse/spark
SPARK_BASE             ?=
SPARK_VERSION          := $(shell sed -n 's/.*"pyspark==\([0-9.]*\)".*/\1/p' pipelines/pyproject.toml)
SPARK_OFFLINE_BASE     := localhost/ampere-spark-base:$(SPARK_VERSION)
SPARK_IMAGE_CONTEXT    := $(STATE)/image-spark
SPARK_BASE_CONTEXT     := $(STATE)/image-spark-base

.PHONY: image-spark image-spark-base image-spark-push test-image-spark

image-spark-base: | $(UV) ## Build the offline Spark base (official image's layout: Spark from pyspark's sdist, Debian's Java 17)
	@mkdir -p $(SPARK_BASE_CONTEXT)/dist
	cd pipelines && $(UV) export --frozen --extra dev --no-emit-project --no-header --format requirements-txt --quiet \
	  | awk '/^[A-Za-z]/ { keep = ($$1 ~ /^pyspark==/) } keep' > $(SPARK_BASE_CONTEXT)/dist/requirements.txt
	@grep -q '^pyspark==$(SPARK_VERSION) ' $(SPARK_BASE_CONTEXT)/dist/requirements.txt || { echo "pyspark $(SPARK_VERSION) is not in pipelines/uv.lock"; exit 1; }
	python3 -m pip download --quiet --no-deps --require-hashes --dest $(SPARK_BASE_CONTEXT)/dist -r $(SPARK_BASE_CONTEXT)/dist/requirements.txt
	cp pipelines/image/spark/offline-entrypoint.sh $(SPARK_BASE_CONTEXT)/
	python_base="$$(CONTAINERS_CONF=$(CURDIR)/tests/ansible/containers.conf bash pipelines/image/build-base.sh)"; \
	$(IMAGE_PODMAN) build --file pipelines/image/spark/base.Containerfile --build-arg BASE_IMAGE="$$python_base" \
	  --tag $(SPARK_OFFLINE_BASE) $(SPARK_BASE_CONTEXT)

image-spark: image jars-spark ## Build the Spark image: the pipeline image + Spark, Java and the pinned jars (offline base unless SPARK_BASE)
	@rm -rf $(SPARK_IMAGE_CONTEXT) && mkdir -p $(SPARK_IMAGE_CONTEXT)/jvm
	$(VENV)/bin/python -c "from lakehouse.core.jvm import load_bundle; load_bundle('spark')"
	cp -al $(STATE)/jvm/spark $(SPARK_IMAGE_CONTEXT)/jvm/spark 2>/dev/null || cp -a $(STATE)/jvm/spark $(SPARK_IMAGE_CONTEXT)/jvm/spark
	cp pipelines/image/spark/spark-defaults.conf pipelines/image/spark/lakehouse_main.py $(SPARK_IMAGE_CONTEXT)/
	base="$(SPARK_BASE)"; [ -n "$$base" ] || { $(MAKE) --no-print-directory image-spark-base && base=$(SPARK_OFFLINE_BASE); }; \
	$(IMAGE_PODMAN) build --file pipelines/image/spark/Dockerfile --build-arg SPARK_BASE="$$base" \
	  --build-arg PIPELINE_IMAGE=localhost/$(IMAGE_REPOSITORY):$(IMAGE_TAG) \
	  --tag $(SPARK_IMAGE_REPOSITORY):$(IMAGE_TAG) $(SPARK_IMAGE_CONTEXT)
	@echo "built $(SPARK_IMAGE_REPOSITORY):$(IMAGE_TAG) on $${base:-$(SPARK_OFFLINE_BASE)}"

image-spark-push: image-spark ## Push the Spark image to IMAGE_REGISTRY
	@[ -n "$(IMAGE_REGISTRY)" ] || { echo "set IMAGE_REGISTRY, e.g. make image-spark-push IMAGE_REGISTRY=registry.lan:5000"; exit 2; }
	$(IMAGE_PODMAN) push $(SPARK_IMAGE_REPOSITORY):$(IMAGE_TAG) $(IMAGE_REGISTRY)/$(SPARK_IMAGE_REPOSITORY):$(IMAGE_TAG)

test-image-spark: setup image-spark ## Run the Spark image: spark-submit in the container writes what the host's embedded run writes
	cd pipelines && PYTHONPATH=tests LAKEHOUSE_SPARK_IMAGE_UNDER_TEST=$(SPARK_IMAGE_REPOSITORY):$(IMAGE_TAG) $(PYTEST) -q -p tests.conftest image/spark/test_spark_image.py
