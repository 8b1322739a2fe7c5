"""MPR: media jobs (transcode, trim) with one state machine over a local and a cloud executor."""
