terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    libvirt = {
      source = "dmacvicar/libvirt"
      # Pinned exactly: 0.8.3 is the last release of the schema these modules are written
      # for; 0.9.0 replaced it with a libvirt-XML-shaped schema (see README.md).
      version = "= 0.8.3"
    }
  }

  # Local state, one file per environment: `make terraform-init ENV=<env>` passes
  # -backend-config=../environments/<env>/terraform.backend.hcl.
  backend "local" {}
}
