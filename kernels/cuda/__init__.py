"""CUDA implementations of accelerated operations (see :mod:`kernels.accelerated`).

Each module here implements one operation whose ``xp`` reference lives in
another module of :mod:`kernels`, with the reference's signature and its
bits: ``lines`` (the field solver's tridiagonal line sweeps), ``movement``
(an immune movement substep), ``graphs`` (fixed lists of array calls as CUDA
graphs). ``prelude`` generates the source text they share from the Python
constants (the random-number hash of :mod:`kernels.random`).

No module here imports CuPy: kernels are built from the array module the
caller passes (``xp.RawKernel``), which is CuPy whenever a backend picks them.
"""
