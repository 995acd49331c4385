"""Export a trained policy (or any model the project loads) for use outside the project.

    python -m rltf_jax.export --checkpoint runs/x --out runs/x/export            # HF folder, newest step
    python -m rltf_jax.export --checkpoint runs/x --best --dtype bfloat16 --out exported/
    python -m rltf_jax.export --checkpoint runs/x/checkpoints/30 --format gguf --quant Q8_0 --out x.gguf
    python -m rltf_jax.export --model smollm2-135m-instruct --format gguf --out smollm2/

`--format hf` writes a transformers folder (models/export_hf.py); `--format gguf` one GGUF file
(models/export_gguf.py): `--out` ending in `.gguf` names the file, any other `--out` is a folder
that gets `model.gguf`. Only the policy is exported (no value head, no reference policy).
Everything is written into a temporary folder beside `--out` and renamed into place at the end,
so a failed export leaves nothing at `--out`; an existing non-empty `--out` is refused unless
`--overwrite`. User errors print `error: <message>` and exit 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from typing import Sequence

from rltf_jax.cli.errors import report_user_errors
from rltf_jax.models import load_model, registry
from rltf_jax.models.export_gguf import DTYPE_TO_GGUF, gguf_type, write_gguf
from rltf_jax.models.export_hf import EXPORT_DTYPES, ExportError, export_dtype, write_hf_folder
from rltf_jax.run.checkpoint import Checkpointer
from rltf_jax.run.policy_checkpoint import checkpoint_directory, load_policy

GGUF_FILE = "model.gguf"


def checkpoint_step(path: str, step: int | None, best: bool) -> tuple[str, int]:
    """(Orbax directory, step) of `--checkpoint`: a run's workdir, its checkpoints/, or one step folder."""

    path = os.path.abspath(path)
    name = os.path.basename(path.rstrip(os.sep))
    if name.isdigit() and os.path.isdir(os.path.join(path, "meta")):  # one checkpoint folder
        if step is not None and step != int(name) or best:
            raise ExportError(f"{path} is the checkpoint of step {name}; drop --step / --best")
        return os.path.dirname(path), int(name)
    directory = checkpoint_directory(path)
    checkpointer = Checkpointer(directory)
    try:
        if step is not None:
            checkpointer.read_meta(step)  # FileNotFoundError naming the steps there are
            return directory, step
        latest = checkpointer.latest_step()
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        if not best:
            return directory, latest
        options = checkpointer.read_meta(latest)["config"].get("checkpoint", {})
        metric = options.get("best_metric")
        chosen = checkpointer.best_step(metric, options.get("best_mode", "max")) if metric else None
        if chosen is None:
            raise ExportError(f"--best: no checkpoint in {directory} records the run's best metric "
                              f"{metric!r}")
        return directory, chosen
    finally:
        checkpointer.close()


def tokenizer_gguf_of(name: str) -> str | None:
    """The GGUF file a model's tokenizer is converted from (the registry models, a .gguf path)."""

    if name == registry.SMOLLM2_NAME or name in registry.TINY_MODELS:
        return registry.smollm2_gguf_path()
    if name.endswith(".gguf") and os.path.isfile(name):
        return name
    return None


def load_source(args):
    """The LoadedModel to export: a checkpoint's policy (`--checkpoint`) or a model (`--model`)."""
    if args.checkpoint:
        directory, step = checkpoint_step(args.checkpoint, args.step, args.best)
        return load_policy(directory, step=step), f"{directory} step {step}"
    if args.step is not None or args.best:
        raise ExportError("--step and --best choose a checkpoint; they need --checkpoint")

    return load_model(args.model), args.model


@contextlib.contextmanager
def staged_output(out: str, overwrite: bool):
    """Yields a fresh folder beside `out`; on success it (or, for a `.gguf` out, the file of that
    name inside it) replaces `out`; on failure it is removed and `out` is untouched."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not overwrite and (os.path.isfile(out) or os.listdir(out)):
        raise ExportError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
    try:
        yield staging
        _default_permissions(staging)
        source = os.path.join(staging, os.path.basename(out)) if out.endswith(".gguf") else staging
        old = None
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
            os.rename(out, os.path.join(old, "previous"))
        os.rename(source, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _default_permissions(folder: str) -> None:
    """The umask's usual modes (mkdtemp and some writers make owner-only folders and files)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def export(loaded, out: str, *, fmt: str = "hf", dtype: str = "float32", quant: str | None = None,
           overwrite: bool = False, tokenizer_gguf: str | None = None) -> str:
    """Writes `loaded` to `out` in `fmt`; returns the path a user loads (folder or .gguf file)."""
    if fmt == "hf":
        if quant is not None:
            raise ExportError("--quant applies to --format gguf only")

        export_dtype(dtype)
        with staged_output(out, overwrite) as staging:
            write_hf_folder(loaded, staging, dtype=dtype)
        return os.path.abspath(out)
    if fmt != "gguf":
        raise ExportError(f"unknown --format {fmt!r} (hf | gguf)")

    qtype = gguf_type(quant or DTYPE_TO_GGUF[dtype])
    single_file = out.endswith(".gguf")
    with staged_output(out, overwrite) as staging:
        name = os.path.basename(os.path.abspath(out)) if single_file else GGUF_FILE
        write_gguf(loaded, os.path.join(staging, name), qtype=qtype, tokenizer_gguf=tokenizer_gguf)
    return os.path.abspath(out) if single_file else os.path.join(os.path.abspath(out), GGUF_FILE)


def transformers_lines(path: str) -> list[str]:
    """The two lines that load an export with transformers."""
    if path.endswith(".gguf"):
        folder, name = os.path.split(path)
        args = f"{folder!r}, gguf_file={name!r}"
    else:
        args = repr(path)
    return ["from transformers import AutoModelForCausalLM, AutoTokenizer",
            f"model = AutoModelForCausalLM.from_pretrained({args}); "
            f"tokenizer = AutoTokenizer.from_pretrained({args})"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rltf_jax.export", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a run's workdir (newest checkpoint), its checkpoints/ or one step folder")
    source.add_argument("--model", help="a model name (smollm2-135m-instruct, tiny-llama), HF folder or .gguf")
    parser.add_argument("--out", required=True, help="folder (hf, gguf) or FILE.gguf")
    parser.add_argument("--format", choices=("hf", "gguf"), default="hf")
    parser.add_argument("--dtype", choices=sorted(EXPORT_DTYPES), default="float32",
                        help="tensor dtype (gguf: F32 / BF16 / F16 unless --quant)")
    parser.add_argument("--quant", default=None, help="gguf tensor type: F32, F16, BF16 or Q8_0")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, default=None, help="this checkpoint step")
    which.add_argument("--best", action="store_true", help="the checkpoint best by the run's best_metric")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    path, what = report_user_errors(lambda: _export(args), debug=args.debug)
    print(f"exported {what} to {path} ({args.format}, {args.quant or args.dtype}) "
          f"in {time.perf_counter() - start:.1f} s; load it with transformers:")
    for line in transformers_lines(path):
        print("    " + line)
    return 0


def _export(args: argparse.Namespace) -> tuple[str, str]:
    if args.quant is not None and args.format == "gguf":
        gguf_type(args.quant)  # refuse before loading anything
    loaded, what = load_source(args)
    path = export(loaded, args.out, fmt=args.format, dtype=args.dtype, quant=args.quant,
                  overwrite=args.overwrite, tokenizer_gguf=tokenizer_gguf_of(loaded.name))
    return path, what


def run() -> None:
    """Console entry point (``rltf-export``)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
