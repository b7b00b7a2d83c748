"""[limits]: bounds on what one request may cost."""

from __future__ import annotations

from ecolens.core.config import Section
from pydantic import Field, field_validator


class LimitsSection(Section):
    """Oversized or too frequent requests are refused before they cost memory or CPU."""

    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="largest request body; larger ones get 413 before the body is read",
    )
    max_batch: int = Field(16, ge=1, le=1024, description="most images in one batch request")
    max_pixels: int = Field(
        16_000_000,
        ge=1,
        description="largest image in pixels (width x height), checked from the header before "
        "decoding; 16 MP bounds one decoded image to about 48 MB",
    )
    max_batch_pixels: int = Field(
        64_000_000,
        ge=1,
        description="most pixels (width x height, from the headers) in one batch request, summed "
        "over its images; larger batches get 413 before any image is decoded",
    )
    rate: str = Field(
        "600/minute",
        description='requests per client, e.g. "10/second", "600/minute"; "" turns it off. '
        "Counted per worker process",
    )

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        value = value.strip()
        if value:
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a rate like '10/second': {exc}") from exc
        return value
