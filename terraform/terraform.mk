# Make targets for terraform/ — included by the root Makefile (`include terraform/terraform.mk`).
# Paths are relative to $(CURDIR), the repository root. Variables are prefixed TF_ to stay
# out of the other fragments' way.
#
#   make setup-terraform                 tools into .venv-terraform/ (idempotent, stamp file)
#   make lint-terraform                  terraform fmt -check, checkov with custom libvirt policies
#   make test-terraform                  pytest tests/terraform (python-hcl2, terraform test, cloud-init)
#   make terraform-init    ENV=dev       init with the environment's local state
#   make terraform-plan    ENV=dev       plan with environments/<env>/terraform.tfvars
#   make terraform-apply   ENV=dev       apply, then write the Ansible inventory
#   make terraform-inventory ENV=dev     terraform output -raw ansible_inventory > environments/<env>/inventory/hosts.yml
#   make terraform-destroy ENV=dev       destroy the environment's VMs, volumes, pool and network

# ENV comes from the command line (ENV=dev|prod); the root Makefile defaults it to "local",
# which has no terraform.tfvars, so the targets below ask for it explicitly.

TERRAFORM            ?= terraform
TF_PYTHON            ?= python3
TF_ROOT              := $(CURDIR)/terraform
TF_VENV              := $(CURDIR)/.venv-terraform
TF_CHECKOV_VENV      := $(TF_VENV)/checkov
TF_STAMP             := $(TF_VENV)/.setup-terraform.stamp
TF_STATE_ROOT        := $(CURDIR)/.state/terraform
TF_CLOUD_INIT_DIR    := $(TF_STATE_ROOT)/cloud-init
TF_ENV_DIR           := $(CURDIR)/environments/$(ENV)
TF_ENV_DATA_DIR      := $(TF_STATE_ROOT)/$(ENV)/.terraform
TF_SOPS_FILE         ?= $(CURDIR)/secrets/$(ENV)/terraform.sops.env
TF_PIP               := --quiet --disable-pip-version-check --require-hashes --no-deps

# Per-environment working data (providers, modules, backend settings) stays out of terraform/.
TF_ENV_RUN = TF_DATA_DIR=$(TF_ENV_DATA_DIR) TF_PLUGIN_CACHE_DIR=$(TF_STATE_ROOT)/plugin-cache \
	$(TERRAFORM) -chdir=$(TF_ROOT)
# An optional SOPS dotenv (TF_VAR_console_password_hash=...) is decrypted into the
# environment of terraform only, never written to disk.
TF_WITH_SECRETS = $(if $(wildcard $(TF_SOPS_FILE)),sops exec-env $(TF_SOPS_FILE),sh -c)

# Writes the inventory atomically (a failed `terraform output` leaves the old file alone).
define TF_WRITE_INVENTORY
mkdir -p $(TF_ENV_DIR)/inventory
$(TF_ENV_RUN) output -raw ansible_inventory > $(TF_ENV_DIR)/inventory/hosts.yml.tmp
mv $(TF_ENV_DIR)/inventory/hosts.yml.tmp $(TF_ENV_DIR)/inventory/hosts.yml
@echo "wrote environments/$(ENV)/inventory/hosts.yml"
endef

.PHONY: setup-terraform lint-terraform test-terraform terraform-env-check \
	terraform-init terraform-plan terraform-apply terraform-destroy terraform-inventory

setup-terraform: $(TF_STAMP) ## Terraform tools into .venv-terraform (idempotent)

$(TF_STAMP): $(TF_ROOT)/requirements.lock $(TF_ROOT)/requirements-checkov.lock
	$(TF_PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install $(TF_PIP) -r $(TF_ROOT)/requirements.lock
	$(TF_PYTHON) -m venv $(TF_CHECKOV_VENV)
	$(TF_CHECKOV_VENV)/bin/pip install $(TF_PIP) -r $(TF_ROOT)/requirements-checkov.lock
	@# Debian's cloud-init, unpacked (not installed) for `cloud-init schema` in the tests.
	@mkdir -p $(TF_CLOUD_INIT_DIR)
	@if [ ! -d $(TF_CLOUD_INIT_DIR)/root/usr/lib/python3/dist-packages/cloudinit ]; then \
	  rm -f $(TF_CLOUD_INIT_DIR)/*.deb; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    (cd $(TF_CLOUD_INIT_DIR) && apt-get download -qq cloud-init 2>/dev/null) || \
	    { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && (cd $(TF_CLOUD_INIT_DIR) && apt-get download -qq cloud-init 2>/dev/null); } || true; \
	  fi; \
	  if ls $(TF_CLOUD_INIT_DIR)/cloud-init_*.deb >/dev/null 2>&1; then \
	    dpkg-deb -x $(TF_CLOUD_INIT_DIR)/cloud-init_*.deb $(TF_CLOUD_INIT_DIR)/root; \
	  else \
	    echo "setup-terraform: cloud-init .deb not available; the cloud-init schema tests will skip"; \
	  fi; \
	fi
	touch $@

lint-terraform: setup-terraform ## terraform fmt -check and checkov with the custom libvirt policies
	$(TERRAFORM) fmt -check -recursive -diff $(TF_ROOT)
	$(TERRAFORM) fmt -check -recursive -diff $(CURDIR)/tests/terraform
	$(TERRAFORM) fmt -check -diff $(wildcard $(CURDIR)/environments/*/terraform*.tfvars)
	@# checkov evaluates terraform/ once per environment, with that environment's values.
	@for vars in $(wildcard $(CURDIR)/environments/*/terraform.tfvars); do \
	  echo "checkov: terraform/ with $${vars#$(CURDIR)/}"; \
	  $(TF_CHECKOV_VENV)/bin/checkov --quiet --config-file $(TF_ROOT)/.checkov.yaml \
	    --directory $(TF_ROOT) --external-checks-dir $(TF_ROOT)/checkov --var-file $$vars || exit 1; \
	done

test-terraform: setup-terraform ## Terraform tests: HCL invariants, terraform test/validate/plan, cloud-init
	$(TF_VENV)/bin/pytest tests/terraform -q

terraform-env-check:
	@test -f $(TF_ENV_DIR)/terraform.tfvars || { echo "terraform: no environments/$(ENV)/terraform.tfvars; run with ENV=<env>, one of: $(notdir $(patsubst %/terraform.tfvars,%,$(wildcard $(CURDIR)/environments/*/terraform.tfvars)))"; exit 2; }

terraform-init: terraform-env-check ## terraform init for ENV=<env> (local state in .state/terraform/<env>)
	mkdir -p $(TF_STATE_ROOT)/$(ENV) $(TF_STATE_ROOT)/plugin-cache
	$(TF_ENV_RUN) init -input=false -reconfigure -backend-config=$(TF_ENV_DIR)/terraform.backend.hcl

terraform-plan: terraform-init ## terraform plan for ENV=<env> with environments/<env>/terraform.tfvars
	$(TF_WITH_SECRETS) '$(TF_ENV_RUN) plan -input=false -var-file=$(TF_ENV_DIR)/terraform.tfvars -out=$(TF_STATE_ROOT)/$(ENV)/tfplan'

terraform-apply: terraform-plan ## Create/update the VMs of ENV=<env>, then write its Ansible inventory
	$(TF_ENV_RUN) apply -input=false $(TF_STATE_ROOT)/$(ENV)/tfplan
	$(TF_WRITE_INVENTORY)

terraform-inventory: terraform-env-check ## Write environments/<env>/inventory/hosts.yml from the state of ENV=<env>
	$(TF_WRITE_INVENTORY)

terraform-destroy: terraform-init ## Destroy the VMs, disks, pool and network of ENV=<env>
	$(TF_WITH_SECRETS) '$(TF_ENV_RUN) destroy -input=false -var-file=$(TF_ENV_DIR)/terraform.tfvars'
