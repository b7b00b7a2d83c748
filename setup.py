"""Maps the repository's top-level folders onto the ``ecolens`` namespace and finds every package
below them, so a new sub-package needs no entry here (all other metadata is in pyproject.toml)."""

from setuptools import find_packages, setup

# import name -> folder; the top-level folder names are the product's layout (ARCHITECTURE.md).
LAYOUT = {
    "ecolens": "ecolens",
    "ecolens.core": "core",
    "ecolens.edge": "edge",
    "ecolens.fleet": "fleet",
    "ecolens.convert": "convert",
    "ecolens.train": "train",
    "ecolens.bench": "bench",
    "ecolens.models": "models",
}

packages = []
for package, folder in LAYOUT.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=LAYOUT)
