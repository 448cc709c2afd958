"""Build the optional C extension of the EXI codec (Cython).

The source is ``ext/_cexi.pyx``, built as the module ``iso15118.exi._cexi`` (the generated C goes
to ``build/``). Without a working compiler the package still installs and runs on the
pure-Python codec; set V2H_REQUIRE_CEXT=1 (CI does) to make a failed extension build an error
instead. The module records the sha256 of the source it was built from (``SOURCE_SHA256``), so
a test can tell a stale build from a current one.
"""

import hashlib
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

REQUIRED = os.environ.get("V2H_REQUIRE_CEXT") == "1"
SOURCE = "ext/_cexi.pyx"


class OptionalBuildExt(build_ext):
    """Build extensions, but let a compile failure fall back to pure Python unless required."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # any toolchain failure: report it, install without the extension
            self._give_up(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - same as above, per extension
            self._give_up(e)

    def _give_up(self, e):
        if REQUIRED:
            raise
        print(f"WARNING: the C extension was not built ({e}); the pure-Python codec will be used",
              file=sys.stderr)


ext_modules = []
try:
    from Cython.Build import cythonize
except ImportError:
    if REQUIRED:
        raise
else:
    from setuptools import Extension

    digest = hashlib.sha256((Path(__file__).resolve().parent / SOURCE).read_bytes()).hexdigest()
    ext_modules = cythonize(
        [Extension("iso15118.exi._cexi", [SOURCE], extra_compile_args=["-O2"])],
        language_level=3,
        build_dir="build",  # not next to the source: ext/ is for sources only
        compile_time_env={"V2H_SOURCE_SHA256": digest},
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
