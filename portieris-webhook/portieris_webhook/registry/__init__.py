"""Registry access: pull-secret credentials, token auth and the v2 manifest client."""
