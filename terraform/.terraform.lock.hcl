# This file is maintained automatically by "tofu init".
# Manual edits may be lost in future updates.

provider "registry.opentofu.org/dmacvicar/libvirt" {
  version     = "0.8.3"
  constraints = "0.8.3, ~> 0.8.3"
  hashes = [
    "h1:OyNWJKJPoCx5EtWdSVJINCt4ibcouocyrOLo/Rcvk9w=",
  ]
}
