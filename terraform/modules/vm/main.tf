# One KVM virtual machine: root overlay disk, data disks, cloud-init ISO and the domain.

locals {
  gib = 1024 * 1024 * 1024
}

resource "libvirt_cloudinit_disk" "this" {
  name           = "${var.name}-cloudinit.iso"
  pool           = var.pool_name
  user_data      = var.user_data
  network_config = var.network_config
  meta_data      = var.meta_data
}

resource "libvirt_volume" "root" {
  name           = "${var.name}-root.qcow2"
  pool           = var.pool_name
  base_volume_id = var.base_volume_id
  size           = var.root_disk_gib * local.gib
  format         = "qcow2"
}

resource "libvirt_volume" "data" {
  for_each = { for d in var.data_disks : d.name => d }

  name   = "${var.name}-data-${each.key}.qcow2"
  pool   = var.pool_name
  size   = each.value.size_gib * local.gib
  format = "qcow2"
}

resource "libvirt_domain" "this" {
  name        = var.name
  description = "Ampere Lakehouse ${var.role} node (managed by terraform)"
  vcpu        = var.vcpu
  memory      = var.memory_mib
  running     = true
  autostart   = var.autostart
  qemu_agent  = true
  cloudinit   = libvirt_cloudinit_disk.this.id

  cpu {
    mode = var.cpu_mode
  }

  network_interface {
    network_id     = var.network_id
    wait_for_lease = false
  }

  # Order matters: vda is the root disk, then data disks in var.data_disks order
  # (vdb, vdc, ...), matching the device paths the inventory hands to Ansible.
  disk {
    volume_id = libvirt_volume.root.id
  }

  dynamic "disk" {
    for_each = var.data_disks
    content {
      volume_id = libvirt_volume.data[disk.value.name].id
    }
  }

  console {
    type        = "pty"
    target_type = "serial"
    target_port = "0"
  }

  graphics {
    type           = "spice"
    listen_type    = "address"
    listen_address = "127.0.0.1"
    autoport       = true
  }
}
