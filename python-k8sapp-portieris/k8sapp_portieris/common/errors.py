"""The error the pure functions raise: an override or a platform fact that cannot be used."""


class OverridesError(ValueError):
    """Its message names the value and says what is wrong with it, for the operator."""
