# Ampere Lakehouse — dev environment: small NAT-ed cluster on the KVM host.
# No secrets here: SSH keys are read from the paths below, an optional console password
# hash comes from SOPS as TF_VAR_console_password_hash (see terraform/README.md).

name_prefix = "ampere"
environment = "dev"
libvirt_uri = "qemu:///system"

network_mode = "nat"
network_cidr = "10.42.10.0/24"
dns_domain   = "dev.ampere.lan"

address_plan = {
  control_plane = 10
  worker        = 20
  storage       = 50
}

storage_pool_path = "/var/lib/libvirt/images/ampere-dev"
base_image_source = "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img"
base_image_name   = "ubuntu-24.04-base.qcow2"

ssh_user             = "ampere"
ssh_public_key_paths = ["~/.ssh/id_ed25519.pub"]

control_plane = {
  count         = 1
  vcpu          = 2
  memory_mib    = 4096
  root_disk_gib = 30
}

# No storage nodes in dev: MinIO and PostgreSQL data go to the workers' data disks
# (vdb = minio, vdc = postgres).
workers = {
  count         = 2
  vcpu          = 4
  memory_mib    = 8192
  root_disk_gib = 40
  data_disks = [
    { name = "minio", size_gib = 50 },
    { name = "postgres", size_gib = 20 },
  ]
}

storage_nodes = {
  count         = 0
  vcpu          = 2
  memory_mib    = 4096
  root_disk_gib = 20
}

extra_packages = ["nfs-common", "open-iscsi"]
timezone       = "Etc/UTC"
autostart      = true
