"""The tool's version, in one place: the package, `--version`, the build and every picture's recipe read it.

It sits in the lowest layer so that any module (the recipe writer among the pure helpers) may name it.
"""

__version__ = "0.1.0"
