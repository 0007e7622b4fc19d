"""bindings/python/setup.py — makes the wheel platform-specific: py3-none-<platform>.

feox.so is native code but no CPython extension module: SQLite dlopen()s it, so it works with any
Python 3. The wheel therefore needs a platform tag but no ABI tag (as sqlite-vec's wheels), and its
files go to platlib.
"""

from setuptools import Distribution, setup
from wheel.bdist_wheel import bdist_wheel


class BinaryDistribution(Distribution):
    """A distribution that carries native code (feox.so) as package data."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """bdist_wheel tagged for the platform only: any Python 3, no ABI dependency."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
