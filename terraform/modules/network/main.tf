# One libvirt network per environment. Addresses are static (cloud-init network-config),
# so libvirt's DHCP is switched off; libvirt's dnsmasq still answers DNS for the VMs' names.

locals {
  managed_ip = var.mode != "bridge"
}

resource "libvirt_network" "this" {
  name      = var.name
  mode      = var.mode
  bridge    = var.bridge
  autostart = var.autostart

  # For bridge mode libvirt neither assigns addresses nor runs dnsmasq.
  addresses = local.managed_ip ? [var.cidr] : null
  domain    = local.managed_ip ? var.dns_domain : null

  dynamic "dhcp" {
    for_each = local.managed_ip ? [1] : []
    content {
      enabled = false
    }
  }

  dynamic "dns" {
    for_each = local.managed_ip ? [1] : []
    content {
      enabled    = true
      local_only = true

      dynamic "hosts" {
        for_each = var.dns_hosts
        content {
          hostname = hosts.value.hostname
          ip       = hosts.value.ip
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.mode != "bridge" || var.bridge != null
      error_message = "mode = bridge needs the name of an existing host bridge in var.bridge (e.g. br0)."
    }
  }
}
