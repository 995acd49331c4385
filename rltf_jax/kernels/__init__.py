"""CPU kernels as XLA FFI custom calls, compiled from C++ on first use (see decode_attention.py)."""
