"""Provider callbacks: verify the signature on the raw body, then hand over to services.events."""
