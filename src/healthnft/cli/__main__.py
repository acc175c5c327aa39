"""``python -m healthnft.cli``: the same as the ``healthnft`` command."""

from healthnft.cli import main

main()
