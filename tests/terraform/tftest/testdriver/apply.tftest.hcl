# `tofu test` of the root configuration against libvirt's built-in test driver with the real
# dmacvicar/libvirt 0.8.3 provider: apply an environment's layout, then `tofu test` destroys
# it. Run by tests/terraform/test_tf_apply.py, which starts the private libvirt daemon and
# passes the environment's tfvars, the daemon's libvirt_uri, a test SSH key and disk sizes
# shrunk to fit the test driver's fixed 100 GiB pool.
#
# Three resources cannot be created by this provider on the test driver, so they are
# overridden (tofu does not call the provider for them; the ids are of volumes the harness
# creates beforehand with virsh in the driver's stock pool):
# - libvirt_volume.base_image and libvirt_cloudinit_disk: both are an upload, and the test
#   driver does not implement virStorageVolUpload;
# - libvirt_domain: the provider looks the machine type up in the host capabilities, and
#   the test driver lists no machine types ("Machine type for arch i686 not available").
# Everything else (storage pool, network with its DNS hosts, root overlays on the base
# image, data disks) is created, read back and destroyed by the provider; tofu fails the
# run if what it reads back differs from the plan.

override_resource {
  target = module.storage.libvirt_volume.base_image
  values = {
    id = "/default-pool/ampere-test-base.qcow2"
  }
}

override_resource {
  target = module.k8s_cluster.module.vm.libvirt_cloudinit_disk.this
  values = {
    id = "/default-pool/ampere-test-cloudinit.iso;00000000-0000-4000-8000-0000000000c1"
  }
}

override_resource {
  target = module.k8s_cluster.module.vm.libvirt_domain.this
  values = {
    id = "00000000-0000-4000-8000-0000000000d1"
  }
}

run "apply_environment" {
  command = apply

  module {
    source = "../../../terraform"
  }

  assert {
    condition     = output.storage_pool == "${var.name_prefix}-${var.environment}" && output.network_name == output.storage_pool
    error_message = "The pool and the network are named <name_prefix>-<environment>."
  }
}
