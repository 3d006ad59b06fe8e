"""The web console the controller serves: its view models (``views``, pure) and its assets (``static/``: HTML,
CSS, JavaScript modules, the zh-CN and en string catalogues), shipped inside the package so that ``pip install``
alone gives a working console in a closed network (no CDN, no external font, no build step).

The API mounts the assets and serves the one event stream the pages listen to (``edgefleet.cloud.api.live``);
this package imports nothing of the API. ``assets.static_dir()`` finds the assets.
"""
