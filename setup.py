"""Build the optional C extension of the EXI codec (Cython); without a compiler the package
installs and runs on the pure-Python codec."""

from setuptools import setup

try:
    from Cython.Build import cythonize
except ImportError:  # Cython is a build requirement; this only guards odd build setups
    ext_modules = []
else:
    from setuptools import Extension

    ext_modules = cythonize(
        [Extension("iso15118.exi._cexi", ["iso15118/exi/_cexi.pyx"], optional=True,
                   extra_compile_args=["-O2"])],
        language_level=3,
    )

setup(ext_modules=ext_modules)
