import os

# One BLAS thread, set before numpy loads: as in the sandbox, so that the reference's times (the
# checks' limits) are measured as student code runs; threads only slow small matrices down.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
