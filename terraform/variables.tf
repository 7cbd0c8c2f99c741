# Sizing/layout variables are shared with modules/cluster_layout (tests keep them identical).

variable "name_prefix" {
  type        = string
  description = "Project prefix of every VM name, e.g. \"ampere\" gives ampere-<environment>-cp-1."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.name_prefix))
    error_message = "name_prefix must be 2-16 lowercase letters or digits, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod, ...); part of every VM name and of the DNS domain."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters or digits, starting with a letter."
  }
}

variable "network_cidr" {
  type        = string
  description = "IPv4 subnet the VMs live in (NAT network or the bridged LAN), e.g. 10.42.10.0/24."

  validation {
    condition     = can(cidrhost(var.network_cidr, 0)) && !can(regex(":", var.network_cidr))
    error_message = "network_cidr must be an IPv4 CIDR such as 10.42.10.0/24."
  }

  validation {
    condition     = can(cidrhost(var.network_cidr, 0)) && try(tonumber(split("/", var.network_cidr)[1]) <= 28, false)
    error_message = "network_cidr must be /28 or larger so the address plan fits."
  }
}

variable "gateway" {
  type        = string
  description = "Default gateway of the VMs. Null means the first host of network_cidr (what a libvirt NAT network uses)."
  default     = null

  validation {
    condition     = var.gateway == null || can(regex("^(\\d{1,3}\\.){3}\\d{1,3}$", var.gateway))
    error_message = "gateway must be null or an IPv4 address."
  }
}

variable "dns_domain" {
  type        = string
  description = "DNS domain of the VMs; each VM resolves as <name>.<dns_domain>."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.dns_domain))
    error_message = "dns_domain must be a lowercase DNS name such as dev.ampere.lan."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login user that cloud-init creates on every VM; becomes ansible_user in the inventory."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && var.ssh_user != "root"
    error_message = "ssh_user must be a valid Linux user name other than root."
  }
}

variable "address_plan" {
  type = object({
    control_plane = number
    worker        = number
    storage       = number
  })
  description = "Host number (offset inside network_cidr) of the first VM of each role; the n-th VM of a role gets offset + n - 1."
  default = {
    control_plane = 10
    worker        = 20
    storage       = 50
  }

  validation {
    condition = alltrue([
      for offset in values(var.address_plan) : offset >= 2 && floor(offset) == offset
    ])
    error_message = "address_plan offsets must be whole numbers >= 2 (host 1 is the gateway)."
  }
}

variable "control_plane" {
  type = object({
    count         = number
    vcpu          = number
    memory_mib    = number
    root_disk_gib = number
    data_disks = optional(list(object({
      name     = string
      size_gib = number
    })), [])
  })
  description = "Kubernetes control-plane VMs: 1, or 3 for an HA etcd quorum."

  validation {
    condition     = contains([1, 3], var.control_plane.count)
    error_message = "control_plane.count must be 1 or 3 (etcd needs an odd quorum)."
  }

  validation {
    condition = (
      var.control_plane.vcpu >= 1 && var.control_plane.vcpu <= 64 && floor(var.control_plane.vcpu) == var.control_plane.vcpu
      && var.control_plane.memory_mib >= 1024 && var.control_plane.memory_mib % 256 == 0
      && var.control_plane.root_disk_gib >= 10 && var.control_plane.root_disk_gib <= 2048
    )
    error_message = "control_plane: vcpu must be 1-64, memory_mib at least 1024 and a multiple of 256, root_disk_gib 10-2048."
  }

  validation {
    condition = (
      length(var.control_plane.data_disks) <= 8
      && length(distinct([for d in var.control_plane.data_disks : d.name])) == length(var.control_plane.data_disks)
      && alltrue([for d in var.control_plane.data_disks : can(regex("^[a-z][a-z0-9]{0,15}$", d.name)) && d.size_gib >= 1 && d.size_gib <= 16384])
    )
    error_message = "control_plane.data_disks: at most 8, unique lowercase names (e.g. minio, postgres), size_gib 1-16384."
  }
}

variable "workers" {
  type = object({
    count         = number
    vcpu          = number
    memory_mib    = number
    root_disk_gib = number
    data_disks = optional(list(object({
      name     = string
      size_gib = number
    })), [])
  })
  description = "Kubernetes worker VMs (Airflow, Spark, and MinIO/PostgreSQL when there are no storage nodes)."

  validation {
    condition     = var.workers.count >= 1 && var.workers.count <= 20 && floor(var.workers.count) == var.workers.count
    error_message = "workers.count must be a whole number from 1 to 20."
  }

  validation {
    condition = (
      var.workers.vcpu >= 1 && var.workers.vcpu <= 64 && floor(var.workers.vcpu) == var.workers.vcpu
      && var.workers.memory_mib >= 1024 && var.workers.memory_mib % 256 == 0
      && var.workers.root_disk_gib >= 10 && var.workers.root_disk_gib <= 2048
    )
    error_message = "workers: vcpu must be 1-64, memory_mib at least 1024 and a multiple of 256, root_disk_gib 10-2048."
  }

  validation {
    condition = (
      length(var.workers.data_disks) <= 8
      && length(distinct([for d in var.workers.data_disks : d.name])) == length(var.workers.data_disks)
      && alltrue([for d in var.workers.data_disks : can(regex("^[a-z][a-z0-9]{0,15}$", d.name)) && d.size_gib >= 1 && d.size_gib <= 16384])
    )
    error_message = "workers.data_disks: at most 8, unique lowercase names (e.g. minio, postgres), size_gib 1-16384."
  }
}

variable "storage_nodes" {
  type = object({
    count         = number
    vcpu          = number
    memory_mib    = number
    root_disk_gib = number
    data_disks = optional(list(object({
      name     = string
      size_gib = number
    })), [])
  })
  description = "Optional dedicated storage VMs for MinIO and PostgreSQL (count 0 puts that data on the workers)."
  default = {
    count         = 0
    vcpu          = 2
    memory_mib    = 4096
    root_disk_gib = 20
    data_disks    = []
  }

  validation {
    condition     = var.storage_nodes.count >= 0 && var.storage_nodes.count <= 10 && floor(var.storage_nodes.count) == var.storage_nodes.count
    error_message = "storage_nodes.count must be a whole number from 0 to 10."
  }

  validation {
    condition = (
      var.storage_nodes.vcpu >= 1 && var.storage_nodes.vcpu <= 64 && floor(var.storage_nodes.vcpu) == var.storage_nodes.vcpu
      && var.storage_nodes.memory_mib >= 1024 && var.storage_nodes.memory_mib % 256 == 0
      && var.storage_nodes.root_disk_gib >= 10 && var.storage_nodes.root_disk_gib <= 2048
    )
    error_message = "storage_nodes: vcpu must be 1-64, memory_mib at least 1024 and a multiple of 256, root_disk_gib 10-2048."
  }

  validation {
    condition = (
      length(var.storage_nodes.data_disks) <= 8
      && length(distinct([for d in var.storage_nodes.data_disks : d.name])) == length(var.storage_nodes.data_disks)
      && alltrue([for d in var.storage_nodes.data_disks : can(regex("^[a-z][a-z0-9]{0,15}$", d.name)) && d.size_gib >= 1 && d.size_gib <= 16384])
    )
    error_message = "storage_nodes.data_disks: at most 8, unique lowercase names (e.g. minio, postgres), size_gib 1-16384."
  }

  # Data for MinIO and PostgreSQL must land on a data disk: on the storage nodes when there
  # are any, otherwise on the workers.
  validation {
    condition = (
      var.storage_nodes.count > 0
      ? length(var.storage_nodes.data_disks) > 0
      : length(var.workers.data_disks) > 0
    )
    error_message = "The role that stores MinIO/PostgreSQL data needs at least one data disk: storage_nodes.data_disks when storage_nodes.count > 0, otherwise workers.data_disks."
  }

  # The address plan must not let one role run into the next one's range.
  validation {
    condition = length(distinct(concat(
      [for i in range(var.control_plane.count) : var.address_plan.control_plane + i],
      [for i in range(var.workers.count) : var.address_plan.worker + i],
      [for i in range(var.storage_nodes.count) : var.address_plan.storage + i],
    ))) == var.control_plane.count + var.workers.count + var.storage_nodes.count
    error_message = "address_plan ranges overlap for these counts: move the offsets apart."
  }

  # Every VM address must fit inside network_cidr (below the broadcast address).
  validation {
    condition = alltrue([
      for role, n in {
        control_plane = var.control_plane.count
        worker        = var.workers.count
        storage       = var.storage_nodes.count
      } : n == 0 || can(cidrhost(var.network_cidr, var.address_plan[role] + n))
    ])
    error_message = "The address plan does not fit into network_cidr: use a larger subnet or smaller offsets."
  }
}

variable "libvirt_uri" {
  type        = string
  description = "libvirt connection URI: qemu:///system when tofu runs on the KVM host, qemu+ssh://user@host/system from another machine; test:///default (libvirt's built-in test driver, no real VMs) for a dry run."
  default     = "qemu:///system"

  validation {
    condition = (
      can(regex("^qemu(\\+(ssh|tcp|tls|unix))?://[^\\s]*/system(\\?\\S*)?$", var.libvirt_uri)) ||
      can(regex("^test(\\+unix)?:///default(\\?\\S*)?$", var.libvirt_uri))
    )
    error_message = "libvirt_uri must be a qemu system URI such as qemu:///system or qemu+ssh://admin@kvm-host/system (or test:///default, libvirt's test driver)."
  }
}

variable "network_mode" {
  type        = string
  description = "nat: private libvirt network with NAT and DNS on the host; route: routed without NAT; bridge: VMs sit on the LAN through an existing host bridge."
  default     = "nat"

  validation {
    condition     = contains(["nat", "route", "bridge"], var.network_mode)
    error_message = "network_mode must be nat, route or bridge."
  }
}

variable "network_bridge" {
  type        = string
  description = "Bridge device: the existing host bridge (e.g. br0) for network_mode = bridge; optional fixed virbr name otherwise."
  default     = null

  validation {
    condition     = var.network_bridge == null || can(regex("^[a-zA-Z0-9_.-]{1,15}$", var.network_bridge))
    error_message = "network_bridge must be a Linux interface name (at most 15 characters)."
  }
}

variable "dns_servers" {
  type        = list(string)
  description = "Name servers of the VMs. Empty means the libvirt network's dnsmasq (gateway) in nat/route mode; bridge mode needs the LAN's servers here."
  default     = []

  validation {
    condition     = alltrue([for s in var.dns_servers : can(regex("^(\\d{1,3}\\.){3}\\d{1,3}$", s))])
    error_message = "dns_servers must be IPv4 addresses."
  }

  validation {
    condition     = var.network_mode != "bridge" || length(var.dns_servers) > 0
    error_message = "network_mode = bridge needs dns_servers (libvirt serves no DNS on a bridged LAN)."
  }
}

variable "storage_pool_path" {
  type        = string
  description = "Host directory of the environment's libvirt dir pool, e.g. /var/lib/libvirt/images/ampere-dev."

  validation {
    condition     = can(regex("^/[^\\s]*[^/\\s]$", var.storage_pool_path))
    error_message = "storage_pool_path must be an absolute path without a trailing slash."
  }
}

variable "create_storage_pool" {
  type        = bool
  description = "Create the pool (true) or reuse an existing one named <name_prefix>-<environment> (false)."
  default     = true
}

variable "base_image_source" {
  type        = string
  description = "Ubuntu cloud image (qcow2) to build every VM on: http(s) URL or absolute local path (a downloaded copy saves bandwidth on re-creates)."
  default     = "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img"

  validation {
    condition     = can(regex("^(https?://\\S+|/\\S+)$", var.base_image_source))
    error_message = "base_image_source must be an http(s) URL or an absolute local path."
  }
}

variable "base_image_name" {
  type        = string
  description = "Volume name of the base image in the pool."
  default     = "ubuntu-24.04-base.qcow2"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*\\.qcow2$", var.base_image_name))
    error_message = "base_image_name must be a file name ending in .qcow2."
  }
}

variable "ssh_public_key_paths" {
  type        = list(string)
  description = "Paths (~ allowed) of OpenSSH public key files authorised for ssh_user. Keys are read from files; never paste keys or secrets into tfvars."

  validation {
    condition     = length(var.ssh_public_key_paths) > 0 && alltrue([for p in var.ssh_public_key_paths : endswith(p, ".pub")])
    error_message = "ssh_public_key_paths needs at least one path, and each must be a public key file ending in .pub."
  }
}

variable "console_password_hash" {
  type        = string
  description = "Optional crypt(3) hash of a console password for ssh_user. Never in tfvars: pass it as TF_VAR_console_password_hash from SOPS (see README.md). Null keeps the password locked."
  default     = null
  sensitive   = true

  validation {
    condition     = var.console_password_hash == null || can(regex("^\\$(6|y|2[aby]?|5)\\$", var.console_password_hash))
    error_message = "console_password_hash must be a crypt(3) hash ($6$..., $y$...), never a plain password."
  }
}

variable "extra_packages" {
  type        = list(string)
  description = "Extra packages cloud-init installs on every VM (qemu-guest-agent is always installed)."
  default     = []

  validation {
    condition     = alltrue([for p in var.extra_packages : can(regex("^[a-z0-9][a-z0-9+.-]+$", p))])
    error_message = "extra_packages must be Debian package names."
  }
}

variable "timezone" {
  type        = string
  description = "Time zone of the VMs."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.timezone))
    error_message = "timezone must be a tz database name such as Etc/UTC."
  }
}

variable "autostart" {
  type        = bool
  description = "Start the network and the VMs when the KVM host boots."
  default     = true
}
