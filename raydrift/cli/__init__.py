"""raydrift: tune drifting models (one-step generators) on Ray: runs, studies, analysis.

\b
Examples:
  raydrift train --preset digits                        # one run under Ray Train (embedded data)
  raydrift train --preset mnist --set data.root=DIR --set drift.kernel=gaussian
  raydrift train --preset digits --set train.steps=200 --dry-run
  raydrift train --list-keys                            # every config key, its type and meaning
  raydrift tune search_spaces/kernels.py                # a study under Ray Tune
  raydrift analyze runs/studies/kernels-digits          # seed-averaged tables and the verdict
"""

from __future__ import annotations

import sys

import click

from raydrift.errors import UserError

# raydrift.cli is the only package that imports click (an import-linter contract in pyproject.toml).
from .analyze import analyze
from .encoder import encoder
from .evaluate import evaluate
from .train import presets, train
from .tune import tune


class _Main(click.Group):
    """Prints a :class:`UserError` raised anywhere below as click's one-line ``Error: ...`` with its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            failure = click.ClickException(str(err))
            failure.exit_code = err.exit_code
            raise failure from None


@click.group(cls=_Main, help=__doc__)
@click.version_option(package_name="raydrift")
def main() -> None:
    pass


for _command in (train, tune, analyze, evaluate, encoder, presets):
    main.add_command(_command)

if __name__ == "__main__":
    sys.exit(main())
