"""Wire-compatible simulators of the external APIs, on 127.0.0.1, for tests and benchmarks.

``server.Simulator`` is the one HTTP server; each provider module
(``google.py``, ``nominatim.py``, ``overpass.py``, ``sites.py``, ``hunter.py``,
``neverbounce.py``) installs its routes on it. Never on the product's default path.
"""
