output "id" {
  description = "libvirt domain UUID."
  value       = libvirt_domain.this.id
}

output "name" {
  description = "libvirt domain name."
  value       = libvirt_domain.this.name
}

output "data_volume_ids" {
  description = "Data disk volume ids by disk name."
  value       = { for k, v in libvirt_volume.data : k => v.id }
}
