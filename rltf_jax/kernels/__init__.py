"""Platform kernels: kernels/platform.py chooses which implementation each backend runs; the CPU
custom calls (XLA FFI, compiled from C++ on first use) live beside it (see decode_attention.py)."""
