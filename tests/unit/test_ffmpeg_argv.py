"""argv building: options come from code, inputs are only ever the scratch file behind a whitelist."""

from fractions import Fraction
from pathlib import Path

from mpr.ffmpeg import Cut, encode_argv, parse_progress_line, stream_copy_argv
from mpr.presets import PRESETS, TRIM_DEFAULT_PRESET
from mpr.probe import AudioInfo, MediaInfo, VideoInfo

SRC, OUT = Path("/scratch/job/source"), Path("/scratch/job/output.mp4")


def media(width=1280, height=720, rotation=0, audio=True, video=True, fps=25.0, rate=48000):
    return MediaInfo(
        format_name="mov,mp4,m4a,3gp,3g2,mj2", duration=5.31, size=1000,
        video=VideoInfo("h264", width, height, "yuv420p", rotation, fps, Fraction(1)) if video else None,
        audio=AudioInfo("aac", 6, rate) if audio else None,
    )


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_transcode_480p_scales_to_even_size_with_stereo_aac_and_faststart():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media())

    assert option(argv, "-vf").startswith("scale=854:480")
    assert option(argv, "-pix_fmt") == "yuv420p"
    assert option(argv, "-c:a") == "aac" and option(argv, "-ac") == "2"
    assert option(argv, "-movflags") == "+faststart"
    assert argv[-1] == str(OUT)


def test_input_is_guarded_by_protocol_and_format_whitelists():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-720p"], media())

    assert option(argv, "-protocol_whitelist") == "file"
    assert "hls" not in option(argv, "-format_whitelist").split(",")
    assert argv.index("-protocol_whitelist") < argv.index("-i")
    assert option(argv, "-i") == str(SRC)


def test_rotated_source_is_sized_as_displayed():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media(640, 360, rotation=90))

    assert option(argv, "-vf").startswith("scale=360:640")


def test_no_audio_stream_maps_no_audio():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media(audio=False))

    assert "0:a:0" not in argv and "-c:a" not in argv


def test_audio_preset_drops_video():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["audio-m4a"], media())

    assert "-vn" in argv and "0:v:0" not in argv


def test_accurate_trim_seeks_then_limits_duration():
    argv = encode_argv("ffmpeg", SRC, OUT, TRIM_DEFAULT_PRESET, media(), Cut(5.3, 2.0))

    assert option(argv, "-ss") == "5.300" and argv.index("-ss") < argv.index("-i")
    assert option(argv, "-t") == "2.000" and argv.index("-t") > argv.index("-i")
    assert "libx264" in argv


def test_fast_trim_copies_streams():
    argv = stream_copy_argv("ffmpeg", SRC, OUT, media(), Cut(4.0, 3.3))

    assert option(argv, "-c") == "copy"
    assert option(argv, "-ss") == "4.000"


def test_high_frame_rate_is_capped_at_60():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media(fps=120.0))

    assert option(argv, "-r") == "60" and option(argv, "-fps_mode") == "cfr"


def test_unknown_or_absurd_frame_rate_keeps_frame_times_instead_of_filling_gaps():
    # A 2-frame file claiming 10 hours must not become 2 million encoded frames.
    for fps in (0.0, 90000.0):
        argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media(fps=fps))

        assert option(argv, "-fps_mode") == "vfr" and "-r" not in argv


def test_high_sample_rate_is_resampled():
    argv = encode_argv("ffmpeg", SRC, OUT, PRESETS["mp4-480p"], media(rate=96000))

    assert option(argv, "-ar") == "48000"


def test_progress_lines_give_seconds():
    assert parse_progress_line("out_time_us=2500000\n") == 2.5
    assert parse_progress_line("out_time_ms=1000000") == 1.0
    assert parse_progress_line("out_time_us=N/A") is None
    assert parse_progress_line("progress=continue") is None
