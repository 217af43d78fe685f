"""ImagePolicy / ClusterImagePolicy: typed model, parsing and matching."""
