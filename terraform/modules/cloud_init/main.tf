# Renders the three NoCloud documents (user-data, network-config, meta-data) for one VM.
# No provider: the VM module passes the results to libvirt_cloudinit_disk, and the tests
# render and validate them without libvirt.

locals {
  packages = distinct(concat(["qemu-guest-agent"], var.packages))

  user_data = templatefile("${path.module}/templates/user-data.yaml.tftpl", {
    hostname        = var.hostname
    fqdn            = var.fqdn
    ssh_user        = var.ssh_user
    ssh_public_keys = [for k in var.ssh_public_keys : trimspace(k)]
    password_hash   = var.password_hash
    packages        = local.packages
    timezone        = var.timezone
  })

  network_config = templatefile("${path.module}/templates/network-config.yaml.tftpl", {
    ip_cidr     = var.ip_cidr
    gateway     = var.gateway
    dns_servers = var.dns_servers
    dns_search  = var.dns_search
  })

  meta_data = templatefile("${path.module}/templates/meta-data.yaml.tftpl", {
    instance_id = var.hostname
    hostname    = var.hostname
  })
}
