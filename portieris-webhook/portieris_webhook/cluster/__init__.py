"""Cluster state: policies, secrets and owners from the kube API or offline manifests; trust-state backends."""
