"""Where the options come from: oslo.config options, the INI file reader, typed settings."""
