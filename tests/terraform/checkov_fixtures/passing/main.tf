# Resources that satisfy every CKV_AMPERE_LIBVIRT_* policy.
# Scanned by tests/terraform/test_checkov_policies.py; never applied.

resource "libvirt_domain" "good" {
  name       = "good"
  vcpu       = 2
  memory     = 2048
  qemu_agent = true
  autostart  = true

  graphics {
    type           = "spice"
    listen_type    = "address"
    listen_address = "127.0.0.1"
  }

  console {
    type        = "pty"
    target_type = "serial"
    target_port = "0"
  }
}

resource "libvirt_volume" "https_image" {
  name   = "https.qcow2"
  source = "https://example.invalid/image.img"
  format = "qcow2"
}

resource "libvirt_volume" "local_image" {
  name   = "local.qcow2"
  source = "/srv/images/noble.img"
  format = "qcow2"
}

resource "libvirt_network" "nat" {
  name      = "nat"
  mode      = "nat"
  addresses = ["10.250.0.0/24"]

  dns {
    enabled    = true
    local_only = true
  }
}

resource "libvirt_pool" "good" {
  name = "good"
  type = "dir"

  target {
    path = "/srv/libvirt/good"
  }
}

resource "libvirt_cloudinit_disk" "good" {
  name           = "good.iso"
  user_data      = "#cloud-config\n"
  network_config = "version: 2\n"
}
