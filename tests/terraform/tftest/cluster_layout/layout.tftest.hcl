# terraform test for modules/cluster_layout (no provider needed: runs everywhere).
# Run by tests/terraform/test_terraform_native.py from tests/terraform/tftest.

variables {
  name_prefix  = "ampere"
  environment  = "test"
  network_cidr = "10.99.0.0/24"
  dns_domain   = "test.ampere.lan"
  ssh_user     = "ampere"
  control_plane = {
    count         = 3
    vcpu          = 2
    memory_mib    = 4096
    root_disk_gib = 30
  }
  workers = {
    count         = 2
    vcpu          = 4
    memory_mib    = 8192
    root_disk_gib = 40
  }
  storage_nodes = {
    count         = 1
    vcpu          = 2
    memory_mib    = 4096
    root_disk_gib = 20
    data_disks = [
      { name = "minio", size_gib = 100 },
      { name = "postgres", size_gib = 20 },
    ]
  }
}

run "names_roles_and_addresses" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  assert {
    condition     = length(output.nodes) == 6
    error_message = "3 control plane + 2 workers + 1 storage node expected."
  }

  assert {
    condition     = output.nodes["ampere-test-cp-1"].ip == "10.99.0.10" && output.nodes["ampere-test-cp-3"].ip == "10.99.0.12"
    error_message = "Control plane addresses must start at address_plan.control_plane."
  }

  assert {
    condition     = output.nodes["ampere-test-worker-2"].ip == "10.99.0.21" && output.nodes["ampere-test-storage-1"].ip == "10.99.0.50"
    error_message = "Worker/storage addresses must follow address_plan."
  }

  assert {
    condition     = output.nodes["ampere-test-storage-1"].data_disks[1].device == "/dev/vdc" && output.nodes["ampere-test-storage-1"].fqdn == "ampere-test-storage-1.test.ampere.lan"
    error_message = "Data disks map to vdb, vdc, ... in list order; FQDN is <name>.<dns_domain>."
  }

  assert {
    condition     = output.gateway == "10.99.0.1" && output.nodes["ampere-test-cp-1"].ip_cidr == "10.99.0.10/24"
    error_message = "Gateway defaults to the first host; ip_cidr carries the prefix length."
  }

  assert {
    condition     = length(output.dns_hosts) == 12
    error_message = "Each VM gets a short-name and an FQDN record."
  }

  assert {
    condition     = keys(output.ansible_inventory.all.children.k8s_cluster.children) == ["kube_control_plane", "kube_workers", "storage_nodes"]
    error_message = "Inventory groups must be kube_control_plane, kube_workers and storage_nodes."
  }

  assert {
    condition = output.ansible_inventory.all.children.k8s_cluster.children.storage_nodes.hosts["ampere-test-storage-1"] == {
      ansible_host = "10.99.0.50"
      ansible_user = "ampere"
      node_role    = "storage"
      node_ip      = "10.99.0.50"
      data_disks   = ["/dev/vdb", "/dev/vdc"]
    }
    error_message = "Inventory host variables do not match the contract."
  }
}

run "storage_role_may_be_empty" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    control_plane = {
      count         = 1
      vcpu          = 2
      memory_mib    = 4096
      root_disk_gib = 30
    }
    workers = {
      count         = 1
      vcpu          = 2
      memory_mib    = 4096
      root_disk_gib = 30
      data_disks    = [{ name = "minio", size_gib = 10 }]
    }
    storage_nodes = {
      count         = 0
      vcpu          = 2
      memory_mib    = 4096
      root_disk_gib = 20
    }
  }

  assert {
    condition     = length(output.ansible_inventory.all.children.k8s_cluster.children.storage_nodes.hosts) == 0
    error_message = "storage_nodes group must exist and be empty."
  }

  assert {
    condition     = output.nodes["ampere-test-worker-1"].data_disks[0].device == "/dev/vdb"
    error_message = "Workers carry the data disk when there are no storage nodes."
  }
}

run "rejects_two_control_planes" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    control_plane = {
      count         = 2
      vcpu          = 2
      memory_mib    = 4096
      root_disk_gib = 30
    }
  }

  expect_failures = [var.control_plane]
}

run "rejects_missing_data_disk" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    storage_nodes = {
      count         = 1
      vcpu          = 2
      memory_mib    = 4096
      root_disk_gib = 20
    }
  }

  expect_failures = [var.storage_nodes]
}

run "rejects_overlapping_address_plan" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    address_plan = {
      control_plane = 10
      worker        = 11
      storage       = 50
    }
  }

  expect_failures = [var.storage_nodes]
}

run "rejects_plan_outside_cidr" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    network_cidr = "10.99.0.0/27"
  }

  expect_failures = [var.storage_nodes]
}

run "rejects_bad_cidr" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    network_cidr = "10.99.0.0"
  }

  expect_failures = [var.network_cidr]
}

run "rejects_undersized_vm" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    workers = {
      count         = 2
      vcpu          = 0
      memory_mib    = 512
      root_disk_gib = 5
    }
  }

  expect_failures = [var.workers]
}

run "rejects_root_user" {
  command = plan

  module {
    source = "../../../terraform/modules/cluster_layout"
  }

  variables {
    ssh_user = "root"
  }

  expect_failures = [var.ssh_user]
}
