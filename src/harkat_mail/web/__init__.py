"""HTTP endpoints (aiohttp): the one-click unsubscribe server."""
