"""Using the tokens: `api` and the aiohttp, httpx and requests adapters, over one shared auth."""
