# Ampere Lakehouse — prod environment: HA control plane, workers and dedicated storage
# nodes, bridged onto the home LAN (br0 must exist on the KVM host, see terraform/README.md).
# No secrets here: SSH keys are read from the paths below, an optional console password
# hash comes from SOPS as TF_VAR_console_password_hash.

name_prefix = "ampere"
environment = "prod"
libvirt_uri = "qemu:///system"

network_mode   = "bridge"
network_bridge = "br0"
network_cidr   = "192.168.50.0/24"
gateway        = "192.168.50.1"
dns_servers    = ["192.168.50.1"]
dns_domain     = "prod.ampere.lan"

# Keep these ranges outside the LAN router's DHCP pool.
address_plan = {
  control_plane = 200
  worker        = 210
  storage       = 230
}

storage_pool_path = "/var/lib/libvirt/images/ampere-prod"
base_image_source = "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img"
base_image_name   = "ubuntu-24.04-base.qcow2"

ssh_user             = "ampere"
ssh_public_key_paths = ["~/.ssh/id_ed25519.pub"]

control_plane = {
  count         = 3
  vcpu          = 2
  memory_mib    = 4096
  root_disk_gib = 40
}

workers = {
  count         = 3
  vcpu          = 6
  memory_mib    = 16384
  root_disk_gib = 60
}

# MinIO (vdb) and PostgreSQL (vdc) live on dedicated storage nodes.
storage_nodes = {
  count         = 2
  vcpu          = 4
  memory_mib    = 8192
  root_disk_gib = 30
  data_disks = [
    { name = "minio", size_gib = 500 },
    { name = "postgres", size_gib = 100 },
  ]
}

extra_packages = ["nfs-common", "open-iscsi"]
timezone       = "Etc/UTC"
autostart      = true
