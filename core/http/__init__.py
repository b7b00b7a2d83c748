"""What every EcoLens HTTP front door shares (the bin's API, the fleet dashboard): API keys,
the refusal to expose an unauthenticated endpoint on a LAN, the TLS pair check and one JSON
error body."""
