terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    libvirt = {
      source = "dmacvicar/libvirt"
      # 0.8.x is the last line with this schema; 0.9 rewrote it (see terraform/README.md).
      version = "~> 0.8.3"
    }
  }
}
