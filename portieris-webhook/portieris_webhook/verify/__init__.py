"""The verifier contract every verifier implements, and the plugin loader."""
