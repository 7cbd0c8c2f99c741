# The pipeline image (pipelines/Dockerfile), built with podman; included by the root Makefile.
#
#   make image                                   build ampere-lakehouse/pipelines:$(IMAGE_TAG)
#   make image IMAGE_BASE=docker.io/library/python:3.11.14-slim-bookworm   from a registry's base
#   make image-push IMAGE_REGISTRY=registry.example:5000   tag and push for the cluster
#
# Without IMAGE_BASE the base is made offline (pipelines/image/build-base.sh: debootstrap); the
# locked wheels are downloaded first, so the build itself needs no network.

IMAGE_REPOSITORY ?= ampere-lakehouse/pipelines
IMAGE_TAG        ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pipelines/pyproject.toml)
IMAGE_BASE       ?=
IMAGE_REGISTRY   ?=
IMAGE_CONTEXT    := $(STATE)/image
IMAGE_PODMAN     := CONTAINERS_CONF=$(CURDIR)/tests/ansible/containers.conf podman

.PHONY: image image-push

image: | $(UV) ## Build the pipeline image with podman (wheel + locked deps + dbt; base made offline unless IMAGE_BASE)
	@mkdir -p $(IMAGE_CONTEXT) && rm -f $(IMAGE_CONTEXT)/*.whl $(IMAGE_CONTEXT)/requirements.txt
	cd pipelines && $(UV) build --wheel --out-dir $(IMAGE_CONTEXT) --quiet
	cd pipelines && $(UV) export --frozen --no-dev --no-emit-project --format requirements-txt --quiet > $(IMAGE_CONTEXT)/requirements.txt
	@# the build itself needs no network: every locked distribution is fetched here, hash-checked
	python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --dest $(IMAGE_CONTEXT)/wheels -r $(IMAGE_CONTEXT)/requirements.txt
	python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --dest $(IMAGE_CONTEXT)/wheels-dbt -r dbt/requirements.lock
	base="$(IMAGE_BASE)"; [ -n "$$base" ] || base="$$(CONTAINERS_CONF=$(CURDIR)/tests/ansible/containers.conf bash pipelines/image/build-base.sh)"; \
	$(IMAGE_PODMAN) build --file pipelines/Dockerfile --build-arg BASE_IMAGE="$$base" \
	  --tag $(IMAGE_REPOSITORY):$(IMAGE_TAG) .
	@echo "built $(IMAGE_REPOSITORY):$(IMAGE_TAG)"

image-push: image ## Push the pipeline image to IMAGE_REGISTRY (the tag pipeline_deploy_image_tag names)
	@[ -n "$(IMAGE_REGISTRY)" ] || { echo "set IMAGE_REGISTRY, e.g. make image-push IMAGE_REGISTRY=registry.lan:5000"; exit 2; }
	$(IMAGE_PODMAN) push $(IMAGE_REPOSITORY):$(IMAGE_TAG) $(IMAGE_REGISTRY)/$(IMAGE_REPOSITORY):$(IMAGE_TAG)

.PHONY: test-image
test-image: setup image ## Run the image: bronze and silver in the container write what the host's package writes
	cd pipelines && LAKEHOUSE_IMAGE_UNDER_TEST=$(IMAGE_REPOSITORY):$(IMAGE_TAG) $(PYTEST) -q -p tests.conftest image/test_image.py
