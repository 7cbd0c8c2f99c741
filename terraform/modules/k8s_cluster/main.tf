# Composition for the Kubernetes roles: control plane (1 or 3), workers (N) and optional
# storage nodes. The layout (names, addresses, disks) comes from the provider-free
# cluster_layout module; each VM gets its own cloud-init documents.

module "layout" {
  source = "../cluster_layout"

  name_prefix   = var.name_prefix
  environment   = var.environment
  network_cidr  = var.network_cidr
  gateway       = var.gateway
  dns_domain    = var.dns_domain
  ssh_user      = var.ssh_user
  address_plan  = var.address_plan
  control_plane = var.control_plane
  workers       = var.workers
  storage_nodes = var.storage_nodes
}

module "cloud_init" {
  source   = "../cloud_init"
  for_each = module.layout.nodes

  hostname        = each.value.name
  fqdn            = each.value.fqdn
  ssh_user        = var.ssh_user
  ssh_public_keys = var.ssh_public_keys
  password_hash   = var.password_hash
  ip_cidr         = each.value.ip_cidr
  gateway         = each.value.gateway
  dns_servers     = var.dns_servers
  dns_search      = [var.dns_domain]
  packages        = var.packages
  timezone        = var.timezone
}

module "vm" {
  source   = "../vm"
  for_each = module.layout.nodes

  name           = each.value.name
  role           = each.value.role
  vcpu           = each.value.vcpu
  memory_mib     = each.value.memory_mib
  root_disk_gib  = each.value.root_disk_gib
  data_disks     = [for d in each.value.data_disks : { name = d.name, size_gib = d.size_gib }]
  pool_name      = var.pool_name
  base_volume_id = var.base_volume_id
  network_id     = var.network_id
  user_data      = module.cloud_init[each.key].user_data
  network_config = module.cloud_init[each.key].network_config
  meta_data      = module.cloud_init[each.key].meta_data
  autostart      = var.autostart
}
