"""HTTP transports for the provider SDKs (SPEC §11): record every call on the wire."""
