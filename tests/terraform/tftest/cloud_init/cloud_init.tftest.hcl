# terraform test for modules/cloud_init (no provider needed). Run by
# tests/terraform/test_terraform_native.py from tests/terraform/tftest.

variables {
  hostname        = "ampere-test-worker-1"
  fqdn            = "ampere-test-worker-1.test.ampere.lan"
  ssh_user        = "ampere"
  ssh_public_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000 test@ampere\n"]
  ip_cidr         = "10.99.0.20/24"
  gateway         = "10.99.0.1"
  dns_servers     = ["10.99.0.1"]
  dns_search      = ["test.ampere.lan"]
}

run "renders_documents" {
  command = plan

  module {
    source = "../../../terraform/modules/cloud_init"
  }

  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "user-data must start with the #cloud-config header."
  }

  assert {
    condition     = yamldecode(output.user_data).users[0].ssh_authorized_keys == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000 test@ampere"]
    error_message = "The SSH key must be authorised, trimmed."
  }

  assert {
    condition     = yamldecode(output.user_data).users[0].lock_passwd == true && !contains(keys(yamldecode(output.user_data).users[0]), "passwd")
    error_message = "Without a password hash the password stays locked."
  }

  assert {
    condition     = contains(yamldecode(output.user_data).packages, "qemu-guest-agent")
    error_message = "qemu-guest-agent must always be installed."
  }

  assert {
    condition     = yamldecode(output.network_config).ethernets.primary.addresses == ["10.99.0.20/24"]
    error_message = "network-config must carry the static address."
  }

  assert {
    condition     = yamldecode(output.meta_data)["local-hostname"] == "ampere-test-worker-1"
    error_message = "meta-data must name the host."
  }
}

run "password_hash_unlocks_console" {
  command = plan

  module {
    source = "../../../terraform/modules/cloud_init"
  }

  variables {
    password_hash = "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghijklm"
  }

  assert {
    condition     = yamldecode(output.user_data).users[0].lock_passwd == false && startswith(yamldecode(output.user_data).users[0].passwd, "$6$")
    error_message = "A password hash must be written as passwd with lock_passwd false."
  }
}

run "rejects_plain_password" {
  command = plan

  module {
    source = "../../../terraform/modules/cloud_init"
  }

  variables {
    password_hash = "hunter2"
  }

  expect_failures = [var.password_hash]
}

run "rejects_private_key" {
  command = plan

  module {
    source = "../../../terraform/modules/cloud_init"
  }

  variables {
    ssh_public_keys = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
  }

  expect_failures = [var.ssh_public_keys]
}

run "rejects_ipv6_address" {
  command = plan

  module {
    source = "../../../terraform/modules/cloud_init"
  }

  variables {
    ip_cidr = "fd00::10/64"
  }

  expect_failures = [var.ip_cidr]
}
