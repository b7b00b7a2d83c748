"""Loads the model once per worker. In `wait_for_model` mode loading happens in the background,
so the server answers /healthz and 503s until the model file appears."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ecolens.core.classifier import Classifier
from ecolens.core.errors import EcoLensError
from ecolens.edge.api.errors import ModelNotReady

log = logging.getLogger("ecolens.api")


class ModelHolder:
    """Holds this worker's Classifier; ``get()`` raises ModelNotReady (503) until it is loaded."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], Classifier],
        wait: bool = False,
        poll_seconds: float = 2.0,
        on_loaded: Callable[[Classifier], None] | None = None,
    ) -> None:
        self.path = path
        self._load = load
        self._wait = wait
        self._poll_seconds = poll_seconds
        self._on_loaded = on_loaded
        self._classifier: Classifier | None = None
        self._problem = "model is loading"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)

    def start(self) -> ModelHolder:
        """Load now unless waiting for a model file: a worker (uvicorn builds the app in each
        worker process) then accepts connections only once its model is ready, so a multi-worker server
        never answers 503 to a request that a ready sibling could have served."""
        if self._wait:
            self._thread.start()
        else:
            self._run()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return self._classifier is not None

    @property
    def problem(self) -> str:
        return "" if self.ready else self._problem

    def get(self) -> Classifier:
        classifier = self._classifier
        if classifier is None:
            raise ModelNotReady(self._problem, headers={"Retry-After": "5"})
        return classifier

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wait and not self.path.is_file():
                self._problem = f"waiting for the model file {self.path}"
            else:
                try:
                    classifier = self._load(self.path)
                except EcoLensError as exc:
                    self._problem = f"model not loaded: {exc}"
                    log.error("%s", self._problem)
                    if not self._wait:
                        return
                else:
                    self._classifier = classifier
                    if self._on_loaded:
                        self._on_loaded(classifier)
                    log.info("model %s loaded from %s", classifier.model_info["name"], self.path)
                    return
            self._stop.wait(self._poll_seconds)
