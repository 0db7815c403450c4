"""Tools for developers, not part of the running product: the feed generator (``devtools.generate``) and the
benchmarks (``devtools.bench``). They may import every other layer."""
