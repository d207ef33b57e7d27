"""Build the optional native CBOR scanner; everything else is in pyproject.toml.

``optional=True``: without a C compiler (or Python headers) the build goes on without the
extension and devattest uses its pure-Python strict CBOR path (src/devattest/cose/_cbor.py).
"""

import os

from setuptools import Extension, setup

_FLAGS = ["-O2", "-Wall", "-Wextra"] if os.name == "posix" else []

setup(
    ext_modules=[
        Extension(
            "devattest.cose._cbor_scan",
            sources=["src/devattest/cose/_cbor_scan.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ],
)
