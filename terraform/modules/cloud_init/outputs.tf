output "user_data" {
  description = "#cloud-config user-data: user, SSH keys, packages (qemu-guest-agent), time zone."
  value       = local.user_data
  sensitive   = true
}

output "network_config" {
  description = "Netplan-style network-config version 2 with the static address."
  value       = local.network_config
}

output "meta_data" {
  description = "NoCloud meta-data (instance-id, local-hostname)."
  value       = local.meta_data
}
