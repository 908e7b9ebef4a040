"""Provider-agnostic core of kube-up: config, provisioner, release, PKI, SSH, validation, CLI."""
