"""maskctl's version, in the bottom layer: a module anywhere in the house can record it, and the
package root (whose lazy names reach the API, the top) need not be imported for it."""

__version__ = "0.1.0"
