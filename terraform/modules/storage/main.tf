# A directory storage pool for the environment and the Ubuntu cloud image every VM's root
# disk is a copy-on-write overlay of.

resource "libvirt_pool" "this" {
  count = var.create_pool ? 1 : 0

  name = var.pool_name
  type = "dir"

  target {
    path = var.pool_path
  }
}

resource "libvirt_volume" "base_image" {
  name   = var.base_image_name
  pool   = var.create_pool ? libvirt_pool.this[0].name : var.pool_name
  source = var.base_image_source
  format = "qcow2"
}
