"""``python -m secprivnode``: the same as the ``secprivnode`` command."""

from secprivnode.cli.main import main

main()
