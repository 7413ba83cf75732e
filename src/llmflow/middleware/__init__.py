"""Ready-made middleware (SPEC §14), each registered with the §5 registries."""
