"""``python -m boxpose.evaluate``: the same as ``boxpose-eval`` (see :mod:`boxpose.cli.evaluate`)."""

from boxpose.cli.evaluate import main

if __name__ == "__main__":
    main()
