# Ansible targets for Ampere Lakehouse, included by the root Makefile (include ansible/ansible.mk).
# Paths are relative to the repository root ($(CURDIR)); state goes under .state/ansible/.
#
#   make setup-ansible        venv .venv-ansible from ansible/requirements.lock (+ apt: age, podman, ...)
#   make lint-ansible         ansible-lint (production, offline), syntax-check, secret scan
#   make test-ansible         pytest tests/ansible (playbooks with the cluster stand-in, Molecule scenarios,
#                             S3 conformance, barman-cloud restore, SOPS/inventory), then the .state/ secret scan
#   make secrets-init ENV=prod  new secrets/<env>/platform.sops.yaml with fresh random values
#   make secrets-edit FILE=secrets/dev/platform.sops.yaml
#   make secrets-rotate       re-key every SOPS file to .sops.yaml's recipients and rotate data keys
#   make ansible-lock         re-resolve ansible/requirements.lock from ansible/requirements.in

ANSIBLE_PYTHON     ?= python3
ANSIBLE_VENV       := $(CURDIR)/.venv-ansible
ANSIBLE_BIN        := $(ANSIBLE_VENV)/bin
ANSIBLE_LOCK       := $(CURDIR)/ansible/requirements.lock
ANSIBLE_STATE      := $(CURDIR)/.state/ansible
ANSIBLE_STAMP      := $(ANSIBLE_VENV)/.installed-$(shell sha256sum $(ANSIBLE_LOCK) 2>/dev/null | cut -c1-16)
# libpq-dev builds psycopg2 for barman-cloud (PostgreSQL backup/restore test); postgresql-15,
# rclone, etcd-server and etcd-client run the backup role's Jobs (test_backup_jobs.py).
ANSIBLE_APT_PKGS   := age podman runc debootstrap libpq-dev postgresql-15 rclone etcd-server etcd-client
ANSIBLE_DEV_AGEKEY := $(CURDIR)/tests/ansible/fixtures/dev-ci.agekey
ANSIBLE_SOPS       := $(ANSIBLE_BIN)/sops --disable-version-check
ANSIBLE_SUDO       := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ANSIBLE_ENV        := PATH="$(ANSIBLE_BIN):$$PATH" ANSIBLE_CONFIG="$(CURDIR)/ansible/ansible.cfg"
ANSIBLE_PLAYBOOKS  := ansible/site.yml $(sort $(wildcard ansible/playbooks/*.yml))
ANSIBLE_INVENTORIES := environments/dev/inventory/hosts.yml environments/prod/inventory/hosts.example.yml

.PHONY: setup-ansible lint-ansible test-ansible secrets-edit secrets-rotate secrets-init ansible-lock

# The pipeline tests run the platform role's PostgreSQL tasks against their loopback server.
PIPELINE_TEST_DEPS += setup-ansible

setup-ansible: $(ANSIBLE_STAMP) ## Create .venv-ansible from ansible/requirements.lock (and apt: age, podman, debootstrap, ...)
	@missing=""; for p in $(ANSIBLE_APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  $(ANSIBLE_SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(ANSIBLE_SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(ANSIBLE_STAMP): $(ANSIBLE_LOCK)
	@test -x $(ANSIBLE_BIN)/python || $(ANSIBLE_PYTHON) -m venv $(ANSIBLE_VENV)
	$(ANSIBLE_BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(ANSIBLE_LOCK)
	@rm -f $(ANSIBLE_VENV)/.installed-*
	@mkdir -p $(ANSIBLE_STATE) && touch $@

lint-ansible: setup-ansible ## ansible-lint (production profile), syntax check of every playbook, secret scan
	cd ansible && $(ANSIBLE_ENV) ansible-lint --offline --profile production
	@set -e; for inv in $(ANSIBLE_INVENTORIES); do \
	  $(ANSIBLE_ENV) ansible-playbook --syntax-check -i $$inv $(ANSIBLE_PLAYBOOKS) >/dev/null || { echo "syntax-check failed ($$inv)"; exit 1; }; \
	done; echo "syntax-check: $(words $(ANSIBLE_PLAYBOOKS)) playbooks x $(words $(ANSIBLE_INVENTORIES)) inventories OK"
	$(ANSIBLE_BIN)/python tests/ansible/secret_scan.py check

test-ansible: setup-ansible ## Ansible tests: real playbooks on both inventories, Molecule, S3 conformance, PITR restore, secret scan of .state/
	$(ANSIBLE_ENV) $(ANSIBLE_BIN)/pytest tests/ansible -q -n 2 --dist worksteal
	$(ANSIBLE_BIN)/python tests/ansible/secret_scan.py state

# dev/CI files decrypt with the committed dev/CI age key unless SOPS_AGE_KEY_FILE is set; prod
# files need an Azure identity allowed to use the Key Vault key (az login or AZURE_* variables).
secrets-edit: setup-ansible ## Edit a SOPS file: make secrets-edit FILE=secrets/<env>/<name>.sops.yaml
	@test -n "$(FILE)" || { echo "usage: make secrets-edit FILE=secrets/<env>/<name>.sops.yaml"; exit 2; }
	@case "$(FILE)" in secrets/dev/*|secrets/ci/*) export SOPS_AGE_KEY_FILE="$${SOPS_AGE_KEY_FILE:-$(ANSIBLE_DEV_AGEKEY)}";; esac; \
	  $(ANSIBLE_SOPS) edit "$(FILE)" || { rc=$$?; [ $$rc -eq 200 ] && echo "unchanged"; [ $$rc -eq 200 ]; }

secrets-rotate: setup-ansible ## Re-key every SOPS file to .sops.yaml's recipients and rotate data keys
	@set -e; for f in $$(find secrets -name '*.sops.yaml' -o -name '*.sops.yml' | sort); do \
	  case "$$f" in secrets/dev/*|secrets/ci/*) export SOPS_AGE_KEY_FILE="$${SOPS_AGE_KEY_FILE:-$(ANSIBLE_DEV_AGEKEY)}";; esac; \
	  echo "rotate $$f"; \
	  $(ANSIBLE_SOPS) updatekeys --yes "$$f"; \
	  $(ANSIBLE_SOPS) rotate --in-place "$$f"; \
	done
	$(ANSIBLE_BIN)/python tests/ansible/secret_scan.py baseline

# prod: .sops.yaml encrypts secrets/prod/ to the Azure Key Vault key (az login or AZURE_* variables).
secrets-init: setup-ansible ## Create the platform secrets file of ENV=<env> with every key it needs
	@test -n "$(ENV)" && [ "$(ENV)" != local ] || { echo "usage: make secrets-init ENV=<env>"; exit 2; }
	SOPS=$(ANSIBLE_BIN)/sops $(ANSIBLE_BIN)/python ansible/scripts/secrets_init.py $(ENV)

ansible-lock: ## Re-resolve ansible/requirements.lock from ansible/requirements.in
	@command -v uv >/dev/null || { echo "ansible-lock needs uv (pip install uv)"; exit 2; }
	uv pip compile --python-version 3.11 --generate-hashes --quiet ansible/requirements.in -o $(ANSIBLE_LOCK)
