# Local state of the prod environment (relative to terraform/, the working directory).
path = "../.state/terraform/prod/terraform.tfstate"
