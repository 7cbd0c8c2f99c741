output "nodes" {
  description = "Every VM by name: role, address, FQDN, vCPU/memory, data disk device paths, libvirt domain id."
  value       = module.k8s_cluster.nodes
}

output "node_addresses" {
  description = "VM name -> IPv4 address."
  value       = { for name, n in module.k8s_cluster.nodes : name => n.ip }
}

output "nodes_by_role" {
  description = "Role (control_plane, worker, storage) -> VM names."
  value = {
    for role in ["control_plane", "worker", "storage"] :
    role => sort([for name, n in module.k8s_cluster.nodes : name if n.role == role])
  }
}

output "network_name" {
  description = "libvirt network of this environment."
  value       = module.network.name
}

output "storage_pool" {
  description = "libvirt storage pool of this environment."
  value       = module.storage.pool_name
}

output "ansible_inventory" {
  description = "Ansible YAML inventory: terraform output -raw ansible_inventory > environments/<env>/inventory/hosts.yml (or make terraform-inventory ENV=<env>)."
  value       = module.k8s_cluster.ansible_inventory_yaml
}
