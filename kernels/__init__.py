"""Array kernels of tme-abm: pure functions written once against an array module ``xp``.

Nothing here imports Mesa or the model layer; only :mod:`kernels.backend` imports CuPy.
"""
