# Each resource here breaks exactly one CKV_AMPERE_LIBVIRT_* policy (named in its comment).
# Scanned by tests/terraform/test_checkov_policies.py; never applied.

# CKV_AMPERE_LIBVIRT_1: no guest agent.
resource "libvirt_domain" "no_agent" {
  name      = "no-agent"
  vcpu      = 2
  memory    = 2048
  autostart = true
}

# CKV_AMPERE_LIBVIRT_2: autostart off.
resource "libvirt_domain" "no_autostart" {
  name       = "no-autostart"
  vcpu       = 2
  memory     = 2048
  qemu_agent = true
  autostart  = false
}

# CKV_AMPERE_LIBVIRT_3: SPICE on every interface.
resource "libvirt_domain" "open_console" {
  name       = "open-console"
  vcpu       = 2
  memory     = 2048
  qemu_agent = true
  autostart  = true

  graphics {
    type           = "spice"
    listen_type    = "address"
    listen_address = "0.0.0.0"
  }
}

# CKV_AMPERE_LIBVIRT_4: provider default memory.
resource "libvirt_domain" "tiny" {
  name       = "tiny"
  vcpu       = 1
  qemu_agent = true
  autostart  = true
}

# CKV_AMPERE_LIBVIRT_5: image over plain HTTP.
resource "libvirt_volume" "http_image" {
  name   = "http.qcow2"
  source = "http://example.invalid/image.img"
  format = "qcow2"
}

# CKV_AMPERE_LIBVIRT_6: open network and DNS forwarded upstream.
resource "libvirt_network" "open" {
  name = "open"
  mode = "open"

  dns {
    enabled    = true
    local_only = false
  }
}

# CKV_AMPERE_LIBVIRT_7: deprecated top-level path.
resource "libvirt_pool" "old_path" {
  name = "old-path"
  type = "dir"
  path = "/srv/pool"
}

# CKV_AMPERE_LIBVIRT_8: no network_config.
resource "libvirt_cloudinit_disk" "no_network" {
  name      = "no-network.iso"
  user_data = "#cloud-config\n"
}
