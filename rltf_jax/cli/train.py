"""python -m rltf_jax.train --config configs/default.py [--config.a.b=v] --workdir runs/x

Online RL from unit-test feedback: every step samples K programs per problem from the current
policy, runs them in the sandbox service, turns the verdicts into per-token rewards (coarse,
fine-grained, adaptive) and takes one jitted PPO update. The run checkpoints with Orbax and
resumes by default when its workdir holds a checkpoint (same problems, same RNG, same state).
Ctrl-C saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import contextlib
import json

from absl import app, flags
from ml_collections import config_flags

from rltf_jax.cli.errors import USER_ERRORS, exit_with_error, report_user_errors
from rltf_jax.run import setup as run_setup
from rltf_jax.run.trainer import Trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, TensorBoard.")
_RESUME = flags.DEFINE_bool("resume", True, "Continue from the workdir's latest checkpoint if it has one.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the traceback of an error (a user's mistake is one line).")


def main(config, workdir: str, *, resume: bool = True) -> dict:
    """Runs (or continues) a training run; returns the final summary (also written to summary.json)."""
    with contextlib.ExitStack() as stack:
        trainer = stack.enter_context(Trainer(config, workdir, resume=resume))
        summary = trainer.run()
    return summary


def _cli(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config configs/default.py")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required, e.g. --workdir runs/default")
    run_setup.configure_host()
    summary = report_user_errors(lambda: main(_CONFIG.value, _WORKDIR.value, resume=_RESUME.value),
                                 debug=_DEBUG.value)
    print(json.dumps(summary, sort_keys=True))


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag or config file (a missing file, a misspelt key, a value
    of the wrong type) reported as ``error: ...`` and exit 2, like every other user's mistake."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, *USER_ERRORS) as error:  # AttributeError: a misspelt config key
        if "--debug" in argv:
            raise
        exit_with_error(error, what="unknown config key " if isinstance(error, AttributeError) else "")


def run() -> None:
    """Console-script entry point (`rltf-train`)."""
    app.run(_cli, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
