"""Backends written outside the package, the way a third-party author writes one."""
