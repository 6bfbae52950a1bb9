"""The township box: kiosk, case capture, media, outbox sync, presence."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xinfang-video")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
