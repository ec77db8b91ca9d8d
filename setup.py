"""The one compiled part: batched SHA-256 for the commit path (crypto/_sha256native.c).

Everything else about the package is in pyproject.toml. The extension is optional: where it does
not build (no C compiler or Python headers), crypto.hashing falls back to hashlib and everything
works, only slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "crypto._sha256native",
            sources=["crypto/_sha256native.c"],
            optional=True,
            extra_compile_args=["-O2", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            extra_link_args=["-pthread"],
        )
    ]
)
