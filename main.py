"""``python main.py`` starts the server, as the earlier backend did (same as ``streamforge serve``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

from streamforge.cli import app

if __name__ == "__main__":
    app(["serve", *sys.argv[1:]])
