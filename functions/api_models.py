"""The REST responses as models, so the generated OpenAPI document says what the API really returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mpr.specs import TrimSpec


class JobOut(BaseModel):
    id: str
    status: Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]
    operation: Literal["transcode", "trim"]
    source: str
    preset: str | None
    trim: TrimSpec | None
    output: str
    output_url: str | None = Field(description="Presigned GET, only when COMPLETED.")
    progress: int = Field(ge=0, le=100)
    attempt: int = Field(ge=1)
    executor: Literal["local", "lambda"]
    error: str | None = Field(description="What went wrong, as a sentence a user can act on.")
    result: dict[str, Any] | None = Field(
        description="size, duration, width, height, video_codec, audio_codec; trims add requested_start, "
        "requested_end and actual_start (fast trims: the keyframe they really started at).",
    )
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str


class JobPage(BaseModel):
    items: list[JobOut]
    next_token: str | None = Field(description="Pass back as next_token for the next page; null at the end.")


class UploadOut(BaseModel):
    source: str = Field(description="The s3:// URI to use as a job's source once uploaded.")
    upload_url: str = Field(description="Presigned PUT for the file's bytes.")
    expires_in: int


class ErrorDetail(BaseModel):
    code: str = Field(description="validation_error, not_found, conflict, unauthorized, …")
    message: str = Field(description="What is wrong, naming the field.")


class ErrorOut(BaseModel):
    error: ErrorDetail


def responses(success: int, model: type[BaseModel], description: str, *errors: int) -> dict[int, dict]:
    """The OpenAPI responses of one route: its success and the errors it can answer."""
    ok = {success: {"description": description, "content": {"application/json": {"model": model}}}}
    return {**ok, **error_responses(*errors)}


def error_responses(*statuses: int) -> dict[int, dict]:
    meaning = {400: "Bad request", 401: "Not signed for this job", 404: "No such job",
               409: "Not allowed in the job's current state", 415: "Body is not JSON",
               422: "Invalid request; the message names the field"}
    return {
        status: {"description": meaning[status], "content": {"application/json": {"model": ErrorOut}}}
        for status in statuses
    }
