variable "hostname" {
  type        = string
  description = "Short host name of the VM (also its libvirt domain name)."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.hostname))
    error_message = "hostname must be a lowercase RFC 1123 label."
  }
}

variable "fqdn" {
  type        = string
  description = "Fully qualified name of the VM (<hostname>.<dns domain>)."

  validation {
    condition     = can(regex("^[a-z0-9.-]+$", var.fqdn))
    error_message = "fqdn must be a lowercase DNS name."
  }
}

variable "ssh_user" {
  type        = string
  description = "User created by cloud-init with passwordless sudo and the SSH keys below."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && var.ssh_user != "root"
    error_message = "ssh_user must be a valid Linux user name other than root."
  }
}

variable "ssh_public_keys" {
  type        = list(string)
  description = "OpenSSH public keys (file contents, not paths) authorised for ssh_user."

  validation {
    condition = length(var.ssh_public_keys) > 0 && alltrue([
      for k in var.ssh_public_keys : can(regex("^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]+( .*)?$", trimspace(k)))
    ])
    error_message = "ssh_public_keys needs at least one OpenSSH public key (ssh-ed25519, ssh-rsa, ecdsa-sha2-*); a private key or empty file is rejected."
  }
}

variable "password_hash" {
  type        = string
  description = "Optional crypt(3) hash (e.g. mkpasswd -m sha-512) of a console password for ssh_user, from SOPS. Null keeps the password locked; SSH always uses keys only."
  default     = null
  sensitive   = true

  validation {
    condition     = var.password_hash == null || can(regex("^\\$(6|y|2[aby]?|5)\\$", var.password_hash))
    error_message = "password_hash must be a crypt(3) hash ($6$..., $y$...), never a plain password."
  }
}

variable "ip_cidr" {
  type        = string
  description = "Static address of the VM with prefix length, e.g. 10.42.10.11/24."

  validation {
    condition     = can(cidrhost(var.ip_cidr, 0)) && !can(regex(":", var.ip_cidr))
    error_message = "ip_cidr must be an IPv4 address with prefix length, e.g. 10.42.10.11/24."
  }
}

variable "gateway" {
  type        = string
  description = "IPv4 default gateway."

  validation {
    condition     = can(regex("^(\\d{1,3}\\.){3}\\d{1,3}$", var.gateway))
    error_message = "gateway must be an IPv4 address."
  }
}

variable "dns_servers" {
  type        = list(string)
  description = "IPv4 name servers the VM uses."

  validation {
    condition     = length(var.dns_servers) > 0 && alltrue([for s in var.dns_servers : can(regex("^(\\d{1,3}\\.){3}\\d{1,3}$", s))])
    error_message = "dns_servers needs at least one IPv4 address."
  }
}

variable "dns_search" {
  type        = list(string)
  description = "DNS search domains."
  default     = []
}

variable "packages" {
  type        = list(string)
  description = "Extra Debian/Ubuntu packages installed on first boot (qemu-guest-agent is always added)."
  default     = []

  validation {
    condition     = alltrue([for p in var.packages : can(regex("^[a-z0-9][a-z0-9+.-]+$", p))])
    error_message = "packages must be Debian package names."
  }
}

variable "timezone" {
  type        = string
  description = "Time zone of the VM, e.g. Etc/UTC or Europe/Berlin."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.timezone))
    error_message = "timezone must be a tz database name such as Etc/UTC."
  }
}
