"""``python -m boxpose.train``: the same as ``boxpose-train`` (see :mod:`boxpose.cli.train`)."""

from boxpose.cli.train import main

if __name__ == "__main__":
    main()
