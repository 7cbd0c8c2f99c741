# Local state of the dev environment (relative to terraform/, the working directory).
path = "../.state/terraform/dev/terraform.tfstate"
