"""Benchmarks: the service measured against a raw Starlette + asyncpg ceiling."""
