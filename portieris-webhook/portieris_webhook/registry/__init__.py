"""Registry access: pull-secret credentials and (later) the v2 API client."""
