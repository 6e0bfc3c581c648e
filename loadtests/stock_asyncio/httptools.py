"""Not httptools: on PYTHONPATH (`PYTHONPATH=loadtests/stock_asyncio`) it makes uvicorn fall back to h11, for
the A/B of the uvloop + httptools lever (loadtests/README.md)."""

raise ImportError("httptools shadowed for an A/B")
