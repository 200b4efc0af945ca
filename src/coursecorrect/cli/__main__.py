"""``python -m coursecorrect.cli``."""

from coursecorrect.cli import main

main()
