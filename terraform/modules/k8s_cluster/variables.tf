# The sizing variables mirror modules/cluster_layout (tests check they stay identical).

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

variable "pool_name" {
  type        = string
  description = "Storage pool for every VM volume (from modules/storage)."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.pool_name))
    error_message = "pool_name must be a libvirt pool name."
  }
}

variable "base_volume_id" {
  type        = string
  description = "Ubuntu cloud image volume id (from modules/storage)."
}

variable "network_id" {
  type        = string
  description = "libvirt network id (from modules/network)."
}

variable "dns_servers" {
  type        = list(string)
  description = "Name servers written into each VM's network-config."

  validation {
    condition     = length(var.dns_servers) > 0
    error_message = "dns_servers needs at least one address."
  }
}

variable "ssh_public_keys" {
  type        = list(string)
  description = "OpenSSH public keys (contents) for ssh_user on every VM."

  validation {
    condition     = length(var.ssh_public_keys) > 0
    error_message = "ssh_public_keys needs at least one public key."
  }
}

variable "password_hash" {
  type        = string
  description = "Optional crypt(3) console password hash for ssh_user (from SOPS); null keeps it locked."
  default     = null
  sensitive   = true

  validation {
    condition     = var.password_hash == null || can(regex("^\\$(6|y|2[aby]?|5)\\$", var.password_hash))
    error_message = "password_hash must be a crypt(3) hash, never a plain password."
  }
}

variable "packages" {
  type        = list(string)
  description = "Extra packages installed by cloud-init on every VM."
  default     = []

  validation {
    condition     = alltrue([for p in var.packages : can(regex("^[a-z0-9][a-z0-9+.-]+$", p))])
    error_message = "packages must be Debian package names."
  }
}

variable "timezone" {
  type        = string
  description = "Time zone of every VM."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.timezone))
    error_message = "timezone must be a tz database name such as Etc/UTC."
  }
}

variable "autostart" {
  type        = bool
  description = "Start the VMs when the host boots."
  default     = true
}
