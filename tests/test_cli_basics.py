import subprocess
import sys

from bcoder import __version__


def test_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"bcoder {__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage" in out.stdout
