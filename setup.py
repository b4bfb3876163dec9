"""Builds the compiled kernels with Cython; everything else is declared in pyproject.toml.

The simulator's per-event arithmetic (sim/slot_kernels.pyx, sim/fast_forward_loop.pyx,
sim/level_merge.pyx, sim/row_kernels.pyx) and the allocation kernels (backend/charging/strategies/
fill_kernels.pyx) run as C loops: as numpy expressions their per-call overhead set the
cost of a run. They are compiled ahead of time when the package is installed, so a run
starts without a JIT. Each .pyx turns off floating-point contraction, so results do
not depend on the compiler's choice of fused multiply-add.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

MODULES = (
    "sim.slot_kernels",
    "sim.fast_forward_loop",
    "sim.level_merge",
    "sim.row_kernels",
    "backend.charging.strategies.fill_kernels",
)

setup(
    ext_modules=cythonize(
        [Extension(name, [name.replace(".", "/") + ".pyx"]) for name in MODULES],
        compiler_directives={"language_level": "3"},
    )
)
