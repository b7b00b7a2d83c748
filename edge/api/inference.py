"""Where the model work of a request runs.

Small requests (at most ``INLINE_PIXELS`` in all, e.g. a 640x480 frame or a few photos) run on
the event loop itself: a few milliseconds, and handing them to a thread costs more than it
saves (measured in-process on the reference model: 3.3 ms of CPU per small photo inline against
3.7 ms through a thread, the queue hand-off and GIL switch). Anything larger goes to a small
per-worker pool whose size is the number of large images this worker decodes at once, so the
loop keeps answering /healthz and reading other bodies meanwhile. That pool is the memory
bound: a decoded frame lives only inside one pool thread (decode -> resize -> model input, then
freed), so a worker never holds more than ``threads`` large decodes, whatever the number of
concurrent requests or the size of their batches. Headers are read (and the pixel limits of the
image and of the whole batch enforced) before any image is decoded."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ecolens.core.classifier import Classifier
from ecolens.core.errors import ImageError
from ecolens.core.preprocess import EncodedImage, inspect_image
from ecolens.edge.api import metrics
from ecolens.edge.api.errors import PayloadTooLarge, from_image_error

INLINE_PIXELS = 1_000_000


def image_names(count: int, batch: bool) -> list[str]:
    """How errors name the images: ``images[3]`` in a batch, nothing for a single image."""
    return [f"images[{i}]" if batch else "" for i in range(count)]


def inspect_all(
    images: list[bytes], names: list[str], max_pixels: int, max_batch_pixels: int
) -> list[EncodedImage]:
    """Every header first: a bad or oversized image fails the request before any decode."""
    inspected = []
    for data, where in zip(images, names):
        try:
            inspected.append(inspect_image(data, max_pixels))
        except ImageError as exc:
            raise from_image_error(exc, where) from None
    total = sum(image.pixels for image in inspected)
    if len(inspected) > 1 and total > max_batch_pixels:
        raise PayloadTooLarge(
            f"the batch holds {total} pixels, over the limit of {max_batch_pixels} "
            "(limits.max_batch_pixels); send fewer or smaller images"
        )
    return inspected


class InferencePool:
    """Runs decode + inference for one request at a time per pool thread."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ecolens-infer")

    async def probabilities(
        self, classifier: Classifier, images: list[EncodedImage], names: list[str]
    ) -> list[tuple[np.ndarray, float]]:
        """(probabilities, inference ms) per image, in order."""
        if sum(image.pixels for image in images) <= INLINE_PIXELS:
            return run_images(classifier, images, names)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run_images, classifier, images, names)

    async def classify(
        self, classifier: Classifier, images: list[EncodedImage], names: list[str], request_id: str
    ) -> list[dict[str, Any]]:
        """The result contract per image, in order."""
        results = []
        for probabilities, elapsed_ms in await self.probabilities(classifier, images, names):
            result = classifier.result(probabilities, elapsed_ms, request_id=request_id)
            metrics.record_result(result["label"], result["inference_ms"])
            results.append(result)
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def run_images(
    classifier: Classifier, images: list[EncodedImage], names: list[str]
) -> list[tuple[np.ndarray, float]]:
    """In a pool thread: one image after the other, so a batch holds one decode at a time."""
    outputs = []
    for image, where in zip(images, names):
        try:
            outputs.append(classifier.predict_encoded(image))
        except ImageError as exc:
            raise from_image_error(exc, where) from None
    return outputs
