"""``python -m rewardloop``: the same as the ``rewardloop`` command."""

from rewardloop.cli.main import app

app(prog_name="rewardloop")
