output "nodes" {
  description = "Every VM by name: role, address, FQDN, sizing, data disk device paths and libvirt domain id."
  value = {
    for name, n in module.layout.nodes : name => merge(n, { domain_id = module.vm[name].id })
  }
}

output "dns_hosts" {
  description = "Name -> address records for the network's DNS (depends on variables only, so the network can be created first)."
  value       = module.layout.dns_hosts
}

output "ansible_inventory" {
  description = "Ansible inventory object (all > k8s_cluster > kube_control_plane / kube_workers / storage_nodes)."
  value       = module.layout.ansible_inventory
}

output "ansible_inventory_yaml" {
  description = "The inventory as YAML for environments/<env>/inventory/hosts.yml."
  value       = module.layout.ansible_inventory_yaml
}
