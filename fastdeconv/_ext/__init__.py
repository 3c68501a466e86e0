"""Compiled kernels of fastdeconv. Nothing here is public; the Python layer validates first."""
