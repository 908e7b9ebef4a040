"""The GCE provider, on google-cloud-compute and google-cloud-storage (also drives localcloud)."""
