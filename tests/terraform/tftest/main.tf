# Harness for `terraform test`: terraform only looks for test files below the directory it
# runs in, so the tests live here and each run block points at the module it exercises
# (module { source = "../../../terraform/modules/..." }). This configuration is empty.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"
}
