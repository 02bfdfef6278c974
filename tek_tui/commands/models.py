"""``tek models``: list, show, remove and export models in the registry.

``list`` and ``show`` read ``meta.json`` files only (no torch). ``export``
loads the weights (sha256-checked) and writes ONNX, a PyTorch state dict or
a safetensors copy; it imports torch lazily, inside the command. Every
subcommand takes ``--json`` for machine-readable output, strict JSON: a NaN
or infinite metric is written as ``null``. A bad name, an unknown model,
corrupt weights or a failed export (an opset the installed torch cannot
write, an output path that is a folder) raise
:class:`~core.errors.RegistryError`, which the CLI prints as one ``tek: ...``
line with exit code 2. ``list`` shows a version whose ``meta.json`` is
unreadable as ``damaged`` (and says why on stderr) rather than hiding it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.ml import registry
from core.paths import models_dir

_REF_HELP = "model name, and a version (default: the latest)"


def register(sub: Any) -> None:
    """Add ``tek models`` and its subcommands."""
    p = sub.add_parser("models", help="list, show, remove and export registry models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))

    ls = msub.add_parser("list", help="every model version")
    ls.add_argument("name", nargs="?", metavar="NAME", help="only this model's versions")
    ls.add_argument("--json", action="store_true", help="JSON list instead of a table")
    ls.set_defaults(func=_list)

    show = msub.add_parser("show", help="one version's meta.json (latest when no @VERSION)")
    show.add_argument("ref", metavar="NAME[@VERSION]", help=_REF_HELP)
    show.add_argument("--json", action="store_true", help="raw meta.json")
    show.set_defaults(func=_show)

    rm = msub.add_parser("rm", help="remove a version (NAME@V) or a whole model (NAME)",
                         description="Remove one version (NAME@VERSION), or a whole model with "
                         "every version (NAME). Nothing asks first.")
    rm.add_argument("ref", metavar="NAME[@VERSION]",
                    help="NAME@VERSION: that version; NAME alone: every version of the model")
    rm.add_argument("--json", action="store_true", help="JSON list of removed versions")
    rm.set_defaults(func=_rm)

    ex = msub.add_parser("export", help="write a version as onnx, pt (state dict) or safetensors")
    ex.add_argument("ref", metavar="NAME[@VERSION]", help=_REF_HELP)
    ex.add_argument("-f", "--format", choices=("onnx", "pt", "safetensors"), default="onnx",
                    help="what to write (default onnx)")
    ex.add_argument("-o", "--output", type=Path, help="file to write (default NAME-vV.FORMAT)")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ex.add_argument("--json", action="store_true", help="JSON summary")
    ex.set_defaults(func=_export)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _summary(mv: registry.ModelVersion) -> dict[str, Any]:
    arch = mv.meta.get("architecture", {})
    return {
        "name": mv.name,
        "version": mv.version,
        "created": mv.meta.get("created"),
        "kind": arch.get("kind"),
        "task": mv.meta.get("task"),
        "parameters": mv.meta.get("parameters"),
        "metrics": mv.meta.get("metrics", {}),
        "parent": mv.meta.get("parent"),
        "run_id": mv.meta.get("run_id"),
        "task_id": mv.meta.get("task_id"),
        "attempt": mv.meta.get("attempt"),
        "path": str(mv.path),
    }


def _damaged_row(bad: registry.DamagedVersion) -> dict[str, Any]:
    return {"name": bad.name, "version": bad.version, "damaged": bad.problem, "path": str(bad.path)}


def _headline(metrics: dict[str, Any]) -> str:
    for key in ("eval_accuracy", "val_accuracy", "eval_r2", "val_r2", "eval_loss", "val_loss"):
        if isinstance(metrics.get(key), int | float):
            return f"{key}={metrics[key]:.4f}"
    return ""


def _list(args: argparse.Namespace) -> int:
    from core.ml import registry

    found, damaged = registry.scan()
    if args.name:
        registry.split_ref(args.name)  # validates the name
        found = [mv for mv in found if mv.name == args.name]
        damaged = [bad for bad in damaged if bad.name == args.name]
    rows = sorted(
        [_summary(mv) for mv in found] + [_damaged_row(bad) for bad in damaged],
        key=lambda row: (row["name"], row["version"]),
    )
    for bad in damaged:
        print(f"tek: {bad.problem} (listed as damaged)", file=sys.stderr)
    if args.json:
        print(registry.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no model named {args.name}" if args.name else f"no models in {models_dir()}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("model", "kind", "task", "params", "metric", "from", "created"):
        table.add_column(column)
    for row in rows:
        if "damaged" in row:
            table.add_row(f"{row['name']}@{row['version']}", "damaged", *[""] * 5)
            continue
        table.add_row(
            f"{row['name']}@{row['version']}",
            str(row["kind"] or ""),
            str(row["task"] or ""),
            str(row["parameters"] or ""),
            _headline(row["metrics"]),
            row["parent"] or _made_by(row),
            str(row["created"] or ""),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: never cut a column to 80 characters
    console.print(table)
    return 0


def _made_by(row: dict[str, Any]) -> str:
    if not row["task_id"]:
        return ""
    attempt = f" #{row['attempt']}" if row.get("attempt") else ""
    return f"{row['run_id']}/{row['task_id']}{attempt}"


def _show(args: argparse.Namespace) -> int:
    from core.ml import registry

    mv = registry.resolve(args.ref)
    if args.json:
        print(registry.dumps(dict(mv.meta), indent=2, sort_keys=True))
        return 0
    meta = mv.meta
    attempt = f" attempt {meta['attempt']}" if meta.get("attempt") else ""
    arch = meta.get("architecture", {})
    lines = [
        f"{mv.ref}  ({mv.path})",
        f"  architecture  {json.dumps(arch)}",
        f"  task          {meta.get('task', '')}  target={meta.get('target', '')}",
        f"  shapes        input {meta.get('input_shape')} -> output {meta.get('output_shape')}",
        f"  parameters    {meta.get('parameters', '')}",
        f"  made by       run {meta.get('run_id', '')} task {meta.get('task_id', '')}{attempt}"
        f" on {meta.get('device', '')} with torch {meta.get('torch_version', '')}",
        f"  parent        {meta.get('parent') or '-'}",
        f"  created       {meta.get('created', '')}",
        f"  sha256        {meta.get('sha256', '')}",
    ]
    for key, value in sorted(meta.get("metrics", {}).items()):
        lines.append(
            f"  {key:<13} {value:.6g}" if isinstance(value, int | float) else f"  {key} {value}"
        )
    print("\n".join(lines))
    return 0


def _rm(args: argparse.Namespace) -> int:
    from core.ml import registry

    removed = registry.remove(args.ref)
    print(json.dumps(removed) if args.json else "\n".join(f"removed {ref}" for ref in removed))
    return 0


def _export(args: argparse.Namespace) -> int:
    from core.ml import registry

    mv = registry.resolve(args.ref)
    out: Path = args.output or Path(f"{mv.name}-v{mv.version}.{args.format}")
    # torch is imported here only: listing and showing models must stay light.
    from core.ml import convert

    written = convert.export(mv, args.format, out, args.opset)
    size = written.stat().st_size
    if args.json:
        print(
            json.dumps(
                {"model": mv.ref, "format": args.format, "path": str(written), "bytes": size}
            )
        )
    else:
        print(f"exported {mv.ref} as {args.format} to {written} ({size} bytes)")
    return 0
