variable "pool_name" {
  type        = string
  description = "Name of the libvirt storage pool holding the base image and every VM disk."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.pool_name))
    error_message = "pool_name must be 2-31 lowercase letters, digits or dashes."
  }
}

variable "pool_path" {
  type        = string
  description = "Host directory of the pool (a dir pool; libvirt creates it). Must be readable by the qemu user, see the security_driver note in terraform/README.md."

  validation {
    condition     = can(regex("^/[^\\s]*[^/\\s]$", var.pool_path))
    error_message = "pool_path must be an absolute directory path without a trailing slash."
  }
}

variable "create_pool" {
  type        = bool
  description = "Create the pool (true) or use an existing pool named pool_name (false)."
  default     = true
}

variable "base_image_source" {
  type        = string
  description = "Ubuntu cloud image (qcow2): an http(s) URL or an absolute path on the machine running terraform."

  validation {
    condition     = can(regex("^(https?://\\S+|/\\S+)$", var.base_image_source))
    error_message = "base_image_source must be an http(s) URL or an absolute local path."
  }
}

variable "base_image_name" {
  type        = string
  description = "Volume name of the base image inside the pool, e.g. ubuntu-24.04-base.qcow2."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*\\.qcow2$", var.base_image_name))
    error_message = "base_image_name must be a file name ending in .qcow2."
  }
}
