"""Red Hat simple signing: signature stores, GPG verification, identity rules."""
