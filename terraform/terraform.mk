# Make targets for terraform/ — included by the root Makefile (`include terraform/terraform.mk`).
# Paths are relative to $(CURDIR), the repository root. Variables are prefixed TF_ to stay
# out of the other fragments' way.
#
#   make terraform-tools                 pinned OpenTofu + the libvirt provider, built from the Go module proxy
#   make setup-terraform                 tools into .venv-terraform/ (idempotent, stamp file)
#   make lint-terraform                  tofu fmt -check, checkov with custom libvirt policies
#   make test-terraform                  pytest tests/terraform (HCL, tofu test/validate/plan, apply on libvirt's test driver)
#   make terraform-init    ENV=dev       init with the environment's local state
#   make terraform-plan    ENV=dev       plan with environments/<env>/terraform.tfvars
#   make terraform-apply   ENV=dev       apply, then write the Ansible inventory
#   make terraform-inventory ENV=dev     tofu output -raw ansible_inventory > environments/<env>/inventory/hosts.yml
#   make terraform-destroy ENV=dev       destroy the environment's VMs, volumes, pool and network

# ENV comes from the command line (ENV=dev|prod); the root Makefile defaults it to "local",
# which has no terraform.tfvars, so the targets below ask for it explicitly.

TF_PYTHON            ?= python3
TF_ROOT              := $(CURDIR)/terraform
TF_VENV              := $(CURDIR)/.venv-terraform
TF_CHECKOV_VENV      := $(TF_VENV)/checkov
TF_STAMP             := $(TF_VENV)/.setup-terraform.stamp
TF_STATE_ROOT        := $(CURDIR)/.state/terraform
TF_CLOUD_INIT_DIR    := $(TF_STATE_ROOT)/cloud-init
TF_ENV_DIR           := $(CURDIR)/environments/$(ENV)
TF_ENV_DATA_DIR      := $(TF_STATE_ROOT)/$(ENV)/.terraform
TF_SOPS_FILE         ?= $(CURDIR)/secrets/$(ENV)/terraform.sops.yaml
# sops comes with the Ansible tooling (make setup-ansible); one on PATH is used otherwise.
TF_SOPS              ?= $(firstword $(wildcard $(CURDIR)/.venv-ansible/bin/sops) sops)
TF_PIP               := --quiet --disable-pip-version-check --require-hashes --no-deps

# --- Pinned tools, built once from the Go module proxy into .state/terraform/tools -----------
# OpenTofu is the CLI (MPL-2.0; Terraform's own module cannot be built from the proxy: its
# zip lacks the nested modules its go.mod replaces). Every target below runs this binary,
# never a terraform/tofu that happens to be on PATH. The libvirt provider is built the same
# way and served to `tofu init` from a filesystem mirror, so init works offline. The h1:
# hashes are those of the module zips (Go checksum database); the Go toolchain is pinned so
# the provider build is byte-for-byte reproducible, which the committed lock files rely on.
TOFU_VERSION         := 1.12.6
TOFU_SUM             := h1:0VT4P8pMmGcCUnQ9JDrJ+Qg2d35Vzm4FFd/9+H7oF98=
TF_LIBVIRT_VERSION   := 0.8.3
TF_LIBVIRT_SUM       := h1:E6ftS8RMCoCopzSYlsMt7gBkmtoSoV80f+648EAjyx8=
TF_GO_TOOLCHAIN      := go1.26.8
TF_PLATFORM          ?= linux_amd64
TF_TOOLS             := $(TF_STATE_ROOT)/tools
TOFU                 := $(TF_TOOLS)/bin/tofu-v$(TOFU_VERSION)
TF_PROVIDER_MIRROR   := $(TF_TOOLS)/providers
TF_LIBVIRT_PLUGIN    := $(TF_PROVIDER_MIRROR)/registry.opentofu.org/dmacvicar/libvirt/$(TF_LIBVIRT_VERSION)/$(TF_PLATFORM)/terraform-provider-libvirt_v$(TF_LIBVIRT_VERSION)
TF_CLI_CONFIG        := $(TF_TOOLS)/tofurc
# Go's own module and build caches (~/go/pkg/mod, ~/.cache/go-build) are shared by every
# checkout on the machine, so a fresh clone (CI) compiles from cache instead of for minutes.
TF_GO_BUILD          = GOTOOLCHAIN=$(TF_GO_TOOLCHAIN) $(TF_ROOT)/tools/go-build-release.sh
# Every tofu run: the provider from the mirror, no update check, no prompts.
TF_TOFU_ENV          = TF_CLI_CONFIG_FILE=$(TF_CLI_CONFIG) CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

# Per-environment working data (providers, modules, backend settings) stays out of terraform/.
TF_ENV_RUN = $(TF_TOFU_ENV) TF_DATA_DIR=$(TF_ENV_DATA_DIR) $(TOFU) -chdir=$(TF_ROOT)
# An optional SOPS file of TF_VAR_* keys is decrypted into the environment of terraform only,
# never written to disk (sops exec-env exports a YAML file's top-level keys).
TF_WITH_SECRETS = $(if $(wildcard $(TF_SOPS_FILE)),$(TF_SOPS) exec-env $(TF_SOPS_FILE),sh -c)

# Writes the inventory atomically (a failed `tofu output` leaves the old file alone).
define TF_WRITE_INVENTORY
mkdir -p $(TF_ENV_DIR)/inventory
$(TF_ENV_RUN) output -raw ansible_inventory > $(TF_ENV_DIR)/inventory/hosts.yml.tmp
mv $(TF_ENV_DIR)/inventory/hosts.yml.tmp $(TF_ENV_DIR)/inventory/hosts.yml
@echo "wrote environments/$(ENV)/inventory/hosts.yml"
endef

.PHONY: terraform-tools terraform-test-deps setup-terraform lint-terraform test-terraform terraform-env-check \
	terraform-init terraform-plan terraform-apply terraform-destroy terraform-inventory

terraform-tools: $(TOFU) $(TF_LIBVIRT_PLUGIN) $(TF_CLI_CONFIG) ## Pinned OpenTofu and libvirt provider from the Go module proxy (cached in .state/)

# The file names carry the versions, so changing a pin builds anew and nothing else does.
$(TOFU):
	$(TF_GO_BUILD) github.com/opentofu/opentofu v$(TOFU_VERSION) '$(TOFU_SUM)' ./cmd/tofu $@ \
	  '-X github.com/opentofu/opentofu/version.dev=no'

# Unpacked filesystem-mirror layout: <host>/<namespace>/<type>/<version>/<os_arch>/<binary>.
$(TF_LIBVIRT_PLUGIN):
	$(TF_GO_BUILD) github.com/dmacvicar/terraform-provider-libvirt v$(TF_LIBVIRT_VERSION) '$(TF_LIBVIRT_SUM)' . $@

$(TF_CLI_CONFIG): $(TF_ROOT)/terraform.mk
	@mkdir -p $(@D)
	@printf '%s\n' \
	  '# Written by terraform/terraform.mk: dmacvicar/libvirt comes from the local build only.' \
	  'provider_installation {' \
	  '  filesystem_mirror {' \
	  '    path    = "$(TF_PROVIDER_MIRROR)"' \
	  '    include = ["registry.opentofu.org/dmacvicar/libvirt"]' \
	  '  }' \
	  '  direct {' \
	  '    exclude = ["registry.opentofu.org/dmacvicar/libvirt"]' \
	  '  }' \
	  '}' > $@

# libvirt's daemon (its built-in test driver backs plan/apply/destroy in the tests) and
# mkisofs (the provider builds cloud-init ISOs with it). Installed only when missing.
TF_TEST_DEBS := libvirt-daemon libvirt-clients genisoimage
terraform-test-deps:
	@if [ ! -x /usr/sbin/libvirtd ] || ! command -v virsh >/dev/null || ! command -v mkisofs >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "terraform-test-deps: install $(TF_TEST_DEBS) (needs root)"; exit 1; fi; \
	  echo "terraform-test-deps: apt-get install $(TF_TEST_DEBS)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TF_TEST_DEBS) >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TF_TEST_DEBS) >/dev/null; }; \
	fi

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

lint-terraform: setup-terraform $(TOFU) $(TF_CLI_CONFIG) ## tofu fmt -check and checkov with the custom libvirt policies
	$(TF_TOFU_ENV) $(TOFU) fmt -check -recursive -diff $(TF_ROOT)
	$(TF_TOFU_ENV) $(TOFU) fmt -check -recursive -diff $(CURDIR)/tests/terraform
	$(TF_TOFU_ENV) $(TOFU) fmt -check -diff $(wildcard $(CURDIR)/environments/*/terraform*.tfvars)
	@# checkov evaluates terraform/ once per environment, with that environment's values.
	@for vars in $(wildcard $(CURDIR)/environments/*/terraform.tfvars); do \
	  echo "checkov: terraform/ with $${vars#$(CURDIR)/}"; \
	  $(TF_CHECKOV_VENV)/bin/checkov --quiet --config-file $(TF_ROOT)/.checkov.yaml \
	    --directory $(TF_ROOT) --external-checks-dir $(TF_ROOT)/checkov --var-file $$vars || exit 1; \
	done

test-terraform: setup-terraform terraform-tools terraform-test-deps ## Terraform tests: HCL, tofu test/validate/plan with the real provider, apply/destroy on libvirt's test driver
	TOFU=$(TOFU) TOFU_CLI_CONFIG=$(TF_CLI_CONFIG) $(TF_VENV)/bin/pytest tests/terraform -q

terraform-env-check:
	@test -f $(TF_ENV_DIR)/terraform.tfvars || { echo "terraform: no environments/$(ENV)/terraform.tfvars; run with ENV=<env>, one of: $(notdir $(patsubst %/terraform.tfvars,%,$(wildcard $(CURDIR)/environments/*/terraform.tfvars)))"; exit 2; }

terraform-init: terraform-env-check terraform-tools ## tofu init for ENV=<env> (local state in .state/terraform/<env>)
	mkdir -p $(TF_STATE_ROOT)/$(ENV)
	$(TF_ENV_RUN) init -input=false -reconfigure -backend-config=$(TF_ENV_DIR)/terraform.backend.hcl

terraform-plan: terraform-init ## tofu plan for ENV=<env> with environments/<env>/terraform.tfvars
	$(TF_WITH_SECRETS) '$(TF_ENV_RUN) plan -input=false -var-file=$(TF_ENV_DIR)/terraform.tfvars -out=$(TF_STATE_ROOT)/$(ENV)/tfplan'

terraform-apply: terraform-plan ## Create/update the VMs of ENV=<env>, then write its Ansible inventory
	$(TF_ENV_RUN) apply -input=false $(TF_STATE_ROOT)/$(ENV)/tfplan
	$(TF_WRITE_INVENTORY)

terraform-inventory: terraform-env-check ## Write environments/<env>/inventory/hosts.yml from the state of ENV=<env>
	$(TF_WRITE_INVENTORY)

terraform-destroy: terraform-init ## Destroy the VMs, disks, pool and network of ENV=<env>
	$(TF_WITH_SECRETS) '$(TF_ENV_RUN) destroy -input=false -var-file=$(TF_ENV_DIR)/terraform.tfvars'
