"""The Discord adapter against SimCord's simulated Discord (no network, no token)."""
