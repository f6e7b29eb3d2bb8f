"""The web service: FastAPI app factory, routes, schemas and the static web page.

`create_app(ServeSettings(...))` builds the app; `braintumor serve` runs it with uvicorn.
"""

from braintumor.serve.app import create_app
from braintumor.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
