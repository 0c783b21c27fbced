"""``python -m policies train ...``: the training commands without the rest of the CLI, for launchers.

    accelerate launch --config_file policies/accelerate/deepspeed_zero2.yaml --num_processes 8 \
        -m policies train sft --recipe paper
"""

from __future__ import annotations

import typer

from policies.cli import register_commands

app = typer.Typer(help="Train policies and reward models with TRL.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
register_commands(app)

if __name__ == "__main__":
    app()
