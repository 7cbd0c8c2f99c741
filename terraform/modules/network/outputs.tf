output "id" {
  description = "libvirt network UUID, for libvirt_domain network_interface.network_id."
  value       = libvirt_network.this.id
}

output "name" {
  description = "libvirt network name."
  value       = libvirt_network.this.name
}

output "dns_server" {
  description = "Address VMs should use as name server: libvirt's dnsmasq on the gateway (nat/route), null in bridge mode."
  value       = local.managed_ip ? cidrhost(var.cidr, 1) : null
}
