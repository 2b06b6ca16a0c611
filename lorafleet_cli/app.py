"""The API as ``lorafleet api`` / ``lorafleet up`` serve it: the FastAPI app with the admission
dispatcher running beside it. The one place that puts the API and the worker side together
(``api/`` never imports ``worker/``); ``uvicorn --factory lorafleet_cli.app:create_app``."""
from __future__ import annotations

from fastapi import FastAPI

from api.main import create_app as create_api_app
from models.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    from worker.dispatcher import start_in_api

    return create_api_app(settings, dispatcher_factory=start_in_api)
