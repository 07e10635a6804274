"""`serve`: the lookup API over the prediction store (Starlette, served by uvicorn), read-only."""
