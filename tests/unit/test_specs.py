"""Job request validation: every refusal names the field a user has to fix."""

import pytest

from mpr.errors import ValidationError
from mpr.specs import default_output, parse_create_request, parse_s3_uri

SOURCE = "s3://mpr-media/uploads/clip.mp4"


def refused(data):
    with pytest.raises(ValidationError) as caught:
        parse_create_request(data)
    return caught.value


def test_transcode_request_is_accepted():
    request = parse_create_request({"source": SOURCE, "operation": "transcode", "preset": "mp4-720p"})

    assert request.preset == "mp4-720p"
    assert request.output_extension == "mp4"


def test_audio_preset_writes_m4a():
    request = parse_create_request({"source": SOURCE, "operation": "transcode", "preset": "audio-m4a"})

    assert request.output_extension == "m4a"


def test_trim_defaults_to_accurate_mode():
    request = parse_create_request({"source": SOURCE, "operation": "trim", "trim": {"start": 1, "end": 3.5}})

    assert request.trim.mode == "accurate"
    assert (request.trim.start, request.trim.end) == (1.0, 3.5)


@pytest.mark.parametrize(
    "data,field,words",
    [
        ({"source": SOURCE, "operation": "trim", "trim": {"start": 3, "end": 1}}, "trim",
         "trim.end must be greater than trim.start"),
        ({"source": SOURCE, "operation": "trim", "trim": {"start": -1, "end": 1}}, "trim.start",
         "greater than or equal to 0"),
        ({"source": SOURCE, "operation": "trim", "trim": {"start": "1", "end": 2}}, "trim.start",
         "valid number"),
        ({"source": SOURCE, "operation": "trim", "trim": {"start": 1, "end": 2, "mode": "x"}}, "trim.mode",
         "accurate"),
        ({"source": SOURCE, "operation": "transcode"}, "preset", "preset is required"),
        ({"source": SOURCE, "operation": "transcode", "preset": "mp4-4k"}, "preset", "mp4-480p"),
        ({"source": SOURCE, "operation": "transcode", "preset": "mp4-480p", "speed": 2}, "speed",
         "not a known field"),
        ({"source": "/etc/passwd", "operation": "transcode", "preset": "mp4-480p"}, "source", "s3://"),
        ({"source": "s3://mpr-media/", "operation": "transcode", "preset": "mp4-480p"}, "source", "object"),
        ({"operation": "transcode", "preset": "mp4-480p"}, "source", "required"),
        ({"source": SOURCE, "operation": "resize"}, "operation", "transcode"),
        ({"source": SOURCE, "operation": "trim"}, "trim", "trim is required"),
        ({"source": SOURCE, "operation": "transcode", "preset": "mp4-480p", "trim": {"start": 0, "end": 1}},
         "trim", "only allowed"),
        ({"source": SOURCE, "operation": "trim", "preset": "mp4-480p",
          "trim": {"start": 0, "end": 1, "mode": "fast"}}, "preset", "fast"),
        ({"source": SOURCE, "operation": "transcode", "preset": "audio-m4a", "output": "s3://mpr-media/a.mp4"},
         "output", ".m4a"),
        ("not an object", "body", "JSON object"),
    ],
)
def test_bad_request_is_refused_naming_the_field(data, field, words):
    error = refused(data)

    assert error.field.startswith(field)
    assert words in error.message
    assert field.split(".")[0] in error.message


def test_nan_and_infinite_times_are_refused():
    for bad in (float("nan"), float("inf")):
        error = refused({"source": SOURCE, "operation": "trim", "trim": {"start": bad, "end": 2}})
        assert "trim.start" in error.message


def test_default_output_sits_under_the_job_id_and_keeps_the_source_name():
    location = default_output("mpr-media", "JOB1", "uploads/x/my clip #1.mov", "mp4")

    assert location.uri == "s3://mpr-media/outputs/JOB1/my clip #1.mp4"


def test_s3_uri_keeps_unusual_keys_verbatim():
    location = parse_s3_uri("s3://b/uploads/a b+c#d?e/ünï.mp4", "source")

    assert (location.bucket, location.key) == ("b", "uploads/a b+c#d?e/ünï.mp4")
