"""asv benchmarks of fastdeconv on the shared layer suite (see ``common.py``)."""
