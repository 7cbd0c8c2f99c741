terraform {
  # Cross-variable validation needs 1.9; mock_provider in `terraform test` needs 1.7.
  required_version = ">= 1.9.0, < 2.0.0"
}
