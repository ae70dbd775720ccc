"""``python -m tdmixup.cli``: the same as the ``tdmixup`` command."""

from tdmixup.cli.commands import main

if __name__ == "__main__":
    raise SystemExit(main())
