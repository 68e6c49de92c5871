"""`maxsim serve`: the Jina API (`/v1/multi-vector`, `/v1/rerank`) for a local model.

Needs the server extra: `pip install 'maxsim[server]'`.

Example:
    >>> from maxsim.server import ServerSettings, create_app
    >>> from maxsim.testing import FakeColBERT
    >>> app = create_app(FakeColBERT(), ServerSettings(api_key="secret"))
    >>> sorted(route.path for route in app.routes if route.path.startswith("/v1"))
    ['/v1/models', '/v1/multi-vector', '/v1/rerank']
"""

from maxsim.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
