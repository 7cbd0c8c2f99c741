provider "libvirt" {
  uri = var.libvirt_uri
}
