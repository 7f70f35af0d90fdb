"""Build script for the optional C extension; the package metadata is in setup.cfg.

``syncws._speedups`` masks and unmasks frames in C. It is optional: where no C compiler
is found the build goes on without it (setuptools prints a warning) and syncws masks
in Python. ``SYNCWS_NO_SPEEDUPS=1`` at run time selects the Python code even when the
extension was built.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("syncws._speedups", sources=["syncws/_speedups.c"], optional=True),
    ]
)
