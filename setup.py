"""The optional compiled search loop of the linearizability checker (metadata: pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and the
checker runs its pure-Python loop, with the same verdicts.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("labkit.check._searchcore", ["labkit/check/_searchcore.c"], optional=True)])
