# Pure logic, no provider: turns the per-role sizing into the list of VMs (names, roles,
# addresses, data-disk device paths) and the Ansible inventory. Kept provider-free so that
# `terraform test` can evaluate it on any machine.

locals {
  cluster_name = "${var.name_prefix}-${var.environment}"
  prefix_len   = tonumber(split("/", var.network_cidr)[1])
  gateway      = coalesce(var.gateway, cidrhost(var.network_cidr, 1))

  # Role key -> (sizing variable, short name used in VM names, inventory group).
  roles = {
    control_plane = { spec = var.control_plane, short = "cp", group = "kube_control_plane" }
    worker        = { spec = var.workers, short = "worker", group = "kube_workers" }
    storage       = { spec = var.storage_nodes, short = "storage", group = "storage_nodes" }
  }

  # virtio disks: the root disk is vda, data disks follow in list order (the cloud-init ISO
  # is a CD-ROM and takes no vdX letter).
  disk_letters = "bcdefghijklmnopq"

  node_list = flatten([
    for role, r in local.roles : [
      for i in range(r.spec.count) : {
        name          = "${local.cluster_name}-${r.short}-${i + 1}"
        role          = role
        group         = r.group
        index         = i + 1
        ip            = cidrhost(var.network_cidr, var.address_plan[role] + i)
        vcpu          = r.spec.vcpu
        memory_mib    = r.spec.memory_mib
        root_disk_gib = r.spec.root_disk_gib
        data_disks = [
          for j, d in r.spec.data_disks : {
            name     = d.name
            size_gib = d.size_gib
            device   = "/dev/vd${substr(local.disk_letters, j, 1)}"
          }
        ]
      }
    ]
  ])

  nodes = {
    for n in local.node_list : n.name => merge(n, {
      fqdn       = "${n.name}.${var.dns_domain}"
      ip_cidr    = "${n.ip}/${local.prefix_len}"
      gateway    = local.gateway
      dns_domain = var.dns_domain
    })
  }

  all_ips = [for n in local.node_list : n.ip]

  inventory = {
    all = {
      children = {
        k8s_cluster = {
          children = {
            for role, r in local.roles : r.group => {
              hosts = {
                for name, n in local.nodes : name => {
                  ansible_host = n.ip
                  ansible_user = var.ssh_user
                  node_role    = n.role
                  node_ip      = n.ip
                  data_disks   = [for d in n.data_disks : d.device]
                } if n.role == role
              }
            }
          }
        }
      }
    }
  }
}
