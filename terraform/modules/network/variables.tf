variable "name" {
  type        = string
  description = "Name of the libvirt network (virsh net-list)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes."
  }
}

variable "mode" {
  type        = string
  description = "nat: libvirt-managed NAT network with its own DNS; route: routed, no NAT; bridge: attach to an existing host bridge on the LAN."

  validation {
    condition     = contains(["nat", "route", "bridge"], var.mode)
    error_message = "mode must be nat, route or bridge."
  }
}

variable "cidr" {
  type        = string
  description = "IPv4 subnet of the network. For nat/route libvirt takes its first host as gateway; for bridge it documents the LAN subnet."

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && !can(regex(":", var.cidr))
    error_message = "cidr must be an IPv4 CIDR such as 10.42.10.0/24."
  }
}

variable "bridge" {
  type        = string
  description = "Host bridge device (e.g. br0) for mode = bridge; for nat/route the name libvirt gives the bridge it creates (null lets libvirt choose virbrN)."
  default     = null

  validation {
    condition     = var.bridge == null || can(regex("^[a-zA-Z0-9_.-]{1,15}$", var.bridge))
    error_message = "bridge must be a Linux interface name (at most 15 characters)."
  }
}

variable "dns_domain" {
  type        = string
  description = "DNS domain served by libvirt's dnsmasq (nat/route) for the VMs."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.dns_domain))
    error_message = "dns_domain must be a lowercase DNS name."
  }
}

variable "dns_hosts" {
  type = list(object({
    hostname = string
    ip       = string
  }))
  description = "Static DNS records (name -> address) served by the network's dnsmasq; ignored in bridge mode, where the LAN's DNS is in charge."
  default     = []
}

variable "autostart" {
  type        = bool
  description = "Start the network when the host boots."
  default     = true
}
