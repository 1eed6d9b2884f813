"""Maps the reference plugins in backends/ to the package ``adsync_backends``.

pyproject.toml cannot map a second source root and discover its sub-packages at
once, so this file only computes the package list; all metadata is in pyproject.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "src", "adsync_backends": "backends"},
    packages=find_packages("src")
    + ["adsync_backends"]
    + ["adsync_backends." + name for name in find_packages("backends")],
    package_data={"adsync": ["py.typed"], "adsync.testing": ["data/**/*"]},
)
