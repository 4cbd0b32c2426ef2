"""Only the compiled part of the package; everything else is declared in pyproject.toml.

The audit walk's per-event check on SQLite is in C (src/evidence_locker/audit/_chainwalk.c,
against the system's libsqlite3, which Python's sqlite3 module uses too, and OpenSSL's
libcrypto). It is optional: without a compiler or those headers the install goes on and the walk
uses its Python digest (the same verdicts, slower); with CI=true the tests require it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "evidence_locker.audit._chainwalk",
            sources=["src/evidence_locker/audit/_chainwalk.c"],
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
