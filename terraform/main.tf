# Root configuration: one environment's network, storage pool + base image, and the
# Kubernetes VMs. Values live in environments/<env>/terraform.tfvars.

locals {
  cluster_name = "${var.name_prefix}-${var.environment}"
  gateway      = coalesce(var.gateway, cidrhost(var.network_cidr, 1))
  dns_servers  = length(var.dns_servers) > 0 ? var.dns_servers : [local.gateway]

  ssh_public_keys = [for p in var.ssh_public_key_paths : trimspace(file(pathexpand(p)))]
}

module "network" {
  source = "./modules/network"

  name       = local.cluster_name
  mode       = var.network_mode
  cidr       = var.network_cidr
  bridge     = var.network_bridge
  dns_domain = var.dns_domain
  dns_hosts  = module.k8s_cluster.dns_hosts
  autostart  = var.autostart
}

module "storage" {
  source = "./modules/storage"

  pool_name         = local.cluster_name
  pool_path         = var.storage_pool_path
  create_pool       = var.create_storage_pool
  base_image_source = var.base_image_source
  base_image_name   = var.base_image_name
}

module "k8s_cluster" {
  source = "./modules/k8s_cluster"

  name_prefix   = var.name_prefix
  environment   = var.environment
  network_cidr  = var.network_cidr
  gateway       = local.gateway
  dns_domain    = var.dns_domain
  ssh_user      = var.ssh_user
  address_plan  = var.address_plan
  control_plane = var.control_plane
  workers       = var.workers
  storage_nodes = var.storage_nodes

  pool_name       = module.storage.pool_name
  base_volume_id  = module.storage.base_volume_id
  network_id      = module.network.id
  dns_servers     = local.dns_servers
  ssh_public_keys = local.ssh_public_keys
  password_hash   = var.console_password_hash
  packages        = var.extra_packages
  timezone        = var.timezone
  autostart       = var.autostart
}
