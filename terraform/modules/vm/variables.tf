variable "name" {
  type        = string
  description = "VM name: libvirt domain name, host name and prefix of its volumes."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase RFC 1123 label."
  }
}

variable "role" {
  type        = string
  description = "Kubernetes role of the VM; written into the domain description."

  validation {
    condition     = contains(["control_plane", "worker", "storage"], var.role)
    error_message = "role must be control_plane, worker or storage."
  }
}

variable "vcpu" {
  type        = number
  description = "Number of virtual CPUs of the VM."

  validation {
    condition     = var.vcpu >= 1 && var.vcpu <= 64 && floor(var.vcpu) == var.vcpu
    error_message = "vcpu must be a whole number from 1 to 64."
  }
}

variable "memory_mib" {
  type        = number
  description = "Memory of the VM in MiB."

  validation {
    condition     = var.memory_mib >= 1024 && var.memory_mib % 256 == 0
    error_message = "memory_mib must be at least 1024 and a multiple of 256."
  }
}

variable "root_disk_gib" {
  type        = number
  description = "Size of the root disk (an overlay on the base image) in GiB; must not be smaller than the image's virtual size."

  validation {
    condition     = var.root_disk_gib >= 10 && var.root_disk_gib <= 2048
    error_message = "root_disk_gib must be from 10 to 2048."
  }
}

variable "data_disks" {
  type = list(object({
    name     = string
    size_gib = number
  }))
  description = "Extra empty qcow2 disks in guest order: the first is /dev/vdb, the next /dev/vdc, ... (MinIO, PostgreSQL)."
  default     = []

  validation {
    condition     = length(var.data_disks) <= 8 && length(distinct([for d in var.data_disks : d.name])) == length(var.data_disks)
    error_message = "data_disks: at most 8 disks with unique names."
  }
}

variable "pool_name" {
  type        = string
  description = "Storage pool for the root, data and cloud-init volumes."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.pool_name))
    error_message = "pool_name must be a libvirt pool name."
  }
}

variable "base_volume_id" {
  type        = string
  description = "Volume id of the Ubuntu cloud image the root disk is layered on."
}

variable "network_id" {
  type        = string
  description = "libvirt network id the single NIC is attached to."
}

variable "user_data" {
  type        = string
  description = "Rendered cloud-init user-data (from modules/cloud_init)."
  sensitive   = true
}

variable "network_config" {
  type        = string
  description = "Rendered cloud-init network-config (from modules/cloud_init)."
}

variable "meta_data" {
  type        = string
  description = "Rendered cloud-init meta-data (from modules/cloud_init)."
}

variable "autostart" {
  type        = bool
  description = "Start the VM when the host boots."
  default     = true
}

variable "cpu_mode" {
  type        = string
  description = "libvirt CPU mode; host-passthrough gives the guest the host's CPU features (nested virt, AVX for Spark/DuckDB)."
  default     = "host-passthrough"

  validation {
    condition     = contains(["host-passthrough", "host-model", "custom"], var.cpu_mode)
    error_message = "cpu_mode must be host-passthrough, host-model or custom."
  }
}
