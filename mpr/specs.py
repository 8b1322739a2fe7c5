"""The job request: what a user may ask for, validated. Pure: no I/O.

A user's words end here as typed values; nothing in a request is ever passed to FFmpeg as text.
"""

from __future__ import annotations

import posixpath
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mpr.errors import ValidationError
from mpr.presets import PRESETS, TRIM_DEFAULT_PRESET, Preset

PresetName = Literal["mp4-1080p", "mp4-720p", "mp4-480p", "audio-m4a"]
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)


def parse_s3_uri(value: str, field: str) -> S3Location:
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ValidationError(field, f"{field} must be an s3:// URI like s3://bucket/key")
    bucket, _, key = value[len("s3://"):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ValidationError(field, f"{field} must name an object: s3://bucket/key")
    if len(key.encode()) > MAX_KEY_BYTES or has_control_characters(key):
        raise ValidationError(field, f"{field} key is too long or has control characters")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise ValidationError(field, f"{field} key must not have empty, '.' or '..' path segments")
    return S3Location(bucket, key)


def has_control_characters(text: str) -> bool:
    """Control, format (such as right-to-left overrides) and line/paragraph separator characters."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


class TrimSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    start: float = Field(ge=0, allow_inf_nan=False,
                         description="Start of the kept range, in seconds from the start of the source.")
    end: float = Field(gt=0, allow_inf_nan=False, description="End of the kept range, in seconds.")
    mode: Literal["accurate", "fast"] = Field(
        default="accurate",
        description="accurate re-encodes and cuts within a frame; fast copies streams from the keyframe "
        "at or before start and reports that keyframe in result.actual_start.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrimSpec:
        if self.end <= self.start:
            raise ValueError("trim.end must be greater than trim.start")
        return self


class CreateJobRequest(BaseModel):
    """Body of POST /api/jobs/ and input of mutation createJob."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: str = Field(description="s3:// URI of the source in the service's media bucket.")
    operation: Literal["transcode", "trim"]
    preset: PresetName | None = Field(
        default=None, description="Required for transcode; optional for accurate trims."
    )
    trim: TrimSpec | None = Field(default=None, description="Required for operation trim.")
    output: str | None = Field(
        default=None, description="s3:// URI for the result; derived from the job id if omitted."
    )

    @field_validator("source")
    @classmethod
    def _source_is_s3(cls, value: str) -> str:
        parse_s3_uri(value, "source")
        return value

    @field_validator("output")
    @classmethod
    def _output_is_s3(cls, value: str | None) -> str | None:
        if value is not None:
            parse_s3_uri(value, "output")
        return value

    @model_validator(mode="after")
    def _operation_fields(self) -> CreateJobRequest:
        if self.operation == "transcode":
            if self.preset is None:
                raise ValueError("preset is required when operation is transcode")
            if self.trim is not None:
                raise ValueError("trim is only allowed when operation is trim")
        if self.operation == "trim":
            if self.trim is None:
                raise ValueError("trim is required when operation is trim")
            if self.trim.mode == "fast" and self.preset is not None:
                raise ValueError("preset cannot be combined with trim.mode fast, which copies the streams")
        if self.output is not None:
            expected = self.output_extension
            if not self.output.lower().endswith("." + expected):
                raise ValueError(f"output must end in .{expected} for this job")
        return self

    @property
    def output_extension(self) -> str:
        if self.operation == "trim" and self.trim and self.trim.mode == "fast":
            return "mp4"
        return self.effective_preset.container

    @property
    def effective_preset(self) -> Preset:
        if self.preset is not None:
            return PRESETS[self.preset]
        return TRIM_DEFAULT_PRESET


def default_output(bucket: str, job_id: str, source_key: str, extension: str) -> S3Location:
    stem = posixpath.splitext(posixpath.basename(source_key))[0] or "output"
    return S3Location(bucket, f"outputs/{job_id}/{stem}.{extension}")


def validation_message(errors: list[dict]) -> tuple[str, str]:
    """(field, sentence) for the first pydantic error, naming the field with dots: trim.end, source."""
    first = errors[0]
    where = ("body", "query", "header", "path", "__root__")
    location = [str(part) for part in first.get("loc", ()) if part not in where]
    field = ".".join(location)
    message = str(first.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "body", "request body is not valid JSON"
    if not field and first.get("type") == "missing":
        return "body", "request body is required"
    if not field and first.get("type") in ("model_type", "dict_type", "model_attributes_type"):
        return "body", "request body must be a JSON object"
    if first.get("type") == "extra_forbidden":
        message = "is not a known field"
    elif first.get("type") == "missing":
        message = "is required"
    if field and not message.startswith(field.split(".")[0]):
        return field, f"{field} {message}" if message[:1].islower() else f"{field}: {message}"
    return field or _field_named_in(message), message


def _field_named_in(message: str) -> str:
    return message.split(" ", 1)[0] if message else ""


def parse_create_request(data: object) -> CreateJobRequest:
    """Validate a request that did not pass through the REST resolver (GraphQL, tests)."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return CreateJobRequest.model_validate(data)
    except PydanticValidationError as error:
        field, message = validation_message(error.errors())
        raise ValidationError(field, message) from None
