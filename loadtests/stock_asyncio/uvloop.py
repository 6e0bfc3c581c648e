"""Not uvloop: on PYTHONPATH (`PYTHONPATH=loadtests/stock_asyncio`) it makes uvicorn fall back to asyncio's own
event loop, for the A/B of the uvloop + httptools lever (loadtests/README.md)."""

raise ImportError("uvloop shadowed for an A/B")
