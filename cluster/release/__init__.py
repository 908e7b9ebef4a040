"""Release: the Kubernetes server tarball, the salt tarball and the images the VMs import."""
