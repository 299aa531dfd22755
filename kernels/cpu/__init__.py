"""Compiled CPU implementations of accelerated operations (see :mod:`kernels.accelerated`).

Each module here implements one operation whose ``xp`` reference lives in
another module of :mod:`kernels`, with the reference's signature and its
bits, as Numba functions: ``stencils`` (the field solve's operator, Jacobi
sweeps and grid transfers, one loop each instead of a NumPy call per
neighbour direction).

The bits are the reference's because each loop does the reference's
floating-point operations on each element in the reference's order, in the
arrays' dtype, and Numba neither reorders them nor fuses a product and a sum
into one rounding (no ``fastmath``); tests/test_cpu_stencils.py compares the
two bit for bit. The loops run on the thread of their caller without the GIL
(``nogil``), over a range of rows, so that a :class:`kernels.calls.CallList`
shares them among its threads as it shares NumPy's calls; Numba's own
threading is not used. Compiled code is cached next to the sources
(``cache=True``, in ``__pycache__``, as Python caches its byte code), so a
process compiles each signature once per installation.
"""
