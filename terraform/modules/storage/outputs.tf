output "pool_name" {
  description = "Storage pool the VM disks go to."
  value       = libvirt_volume.base_image.pool
}

output "base_volume_id" {
  description = "Volume id of the base image (backing file of each VM root disk)."
  value       = libvirt_volume.base_image.id
}
