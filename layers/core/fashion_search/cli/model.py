"""``fashion-search model info | pull | export | quantize``: get, make and inspect bundles."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(
    help="Model bundles: train, pull, export, quantize, info.", no_args_is_help=True
)


def _model_group(app: typer.Typer) -> typer.Typer:
    """The ``model`` group, shared with other modules' model commands (first one creates it)."""
    for group in app.registered_groups:
        if group.name == "model" and group.typer_instance is not None:
            return group.typer_instance
    app.add_typer(model_app, name="model")
    return model_app


class Tower(StrEnum):
    VISUAL = "visual"
    TEXTUAL = "textual"


class ExportKind(StrEnum):
    HF = "hf"
    OPEN_CLIP = "open_clip"


_TEXT_LENGTH = {
    "dynamic": "dynamic (queries run at their own length: the next of 8/16/32/... up to {n})",
    "fixed": "fixed (every query padded to {n} tokens)",
}


def info_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (immich layout).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """What a bundle is: dims, image size, preprocessing, batch axes. Fails on a bad bundle."""
    from fashion_search.model.info import inspect_bundle

    info = inspect_bundle(bundle)
    if as_json:
        typer.echo(json.dumps(info.to_json(), indent=2))
        return
    pp = info.preprocess
    lines = [
        f"bundle:        {info.path}",
        f"model_id:      {info.model_id}",
        f"embedding dim: {info.dim}",
        f"image size:    {info.image_size}x{info.image_size}",
        f"preprocess:    resize_mode={pp['resize_mode']} interpolation={pp['interpolation']} "
        f"mean={pp['mean']} std={pp['std']} fill_color={pp['fill_color']}",
        f"context:       {info.context_length} tokens, pad id {info.pad_token_id}",
        f"text length:   {_TEXT_LENGTH[info.text_length].format(n=info.context_length)}",
    ]
    for name, tower in (("visual", info.visual), ("textual", info.textual)):
        lines.append(
            f"{name + ':':<14} input {tower.input_name!r} {tower.input_shape}, "
            f"batch {tower.batch}, {tower.precision}, {tower.size_bytes / 1e6:.1f} MB"
        )
    if info.int8_agreement:
        tasks = ", ".join(
            f"{task} {lo:.3f}-{hi:.3f}" for task, (lo, hi) in info.int8_agreement.items()
        )
        lines.append(
            f"int8:          top-10 agreement with fp32, as measured: {tasks} (docs/model.md)"
        )
    typer.echo("\n".join(lines))


def pull_command(
    repo: Annotated[
        str, typer.Argument(help="Hub repo (immich-app/ViT-B-32__openai) or a local dir.")
    ],
    dest: Annotated[
        Path | None, typer.Option(help="Where to write (default models/<name>).")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Hugging Face cache directory.")] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use only the local Hugging Face cache.")
    ] = False,
) -> None:
    """Download an immich-layout bundle from the Hugging Face Hub and check that it loads."""
    from fashion_search.model.build.pull import default_destination, pull_bundle

    target = dest or default_destination(repo)
    pull_bundle(repo, target, revision=revision, cache_dir=cache_dir, local_files_only=offline)
    typer.echo(f"bundle written to {target}")


def export_command(
    source: Annotated[
        str,
        typer.Argument(
            help="hf: a local dir or Hub id; open_clip: a model name, hf-hub:… or local-dir:DIR"
        ),
    ],
    dest: Annotated[Path, typer.Argument(help="Bundle directory to write (replaced if present).")],
    kind: Annotated[ExportKind, typer.Option(help="Which library the model comes from.")] = (
        ExportKind.HF
    ),
    pretrained: Annotated[
        str | None, typer.Option(help="open_clip pretrained tag, e.g. openai.")
    ] = None,
    fixed_batch: Annotated[
        int | None, typer.Option(min=1, help="Fix the batch axis (default: dynamic).")
    ] = None,
    fixed_length: Annotated[
        bool,
        typer.Option(
            "--fixed-length",
            help="hf: fix the text graph at the context length (default: dynamic).",
        ),
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="hf: only local files, no download.")
    ] = False,
) -> None:
    """Export a Hugging Face or open_clip CLIP to the bundle layout (needs the export extra)."""
    from fashion_search.errors import ConfigError

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError("model export needs torch: pip install 'fashion-search[export]'") from exc
    if kind is ExportKind.HF:
        from fashion_search.model.build.export import export_hf_clip

        export_hf_clip(
            source,
            dest,
            fixed_batch=fixed_batch,
            dynamic_length=not fixed_length,
            local_files_only=offline,
        )
    else:
        from fashion_search.model.build.export_open_clip import export_open_clip

        export_open_clip(source, dest, pretrained=pretrained, fixed_batch=fixed_batch)
    info_command(dest)


def quantize_command(
    source: Annotated[Path, typer.Argument(help="An fp32 bundle.")],
    dest: Annotated[Path, typer.Argument(help="Where to write the int8 bundle.")],
    per_channel: Annotated[
        bool, typer.Option("--per-channel", help="Per-channel weight scales.")
    ] = False,
    tower: Annotated[
        list[Tower] | None,
        typer.Option("--tower", help="Tower to quantise; repeat for both (default: visual only)."),
    ] = None,
) -> None:
    """Write an int8 (dynamic quantisation) copy of a bundle."""
    from fashion_search.model.build.quantize import DEFAULT_TOWERS, quantize_bundle

    towers = [t.value for t in tower] if tower else DEFAULT_TOWERS
    quantize_bundle(source, dest, per_channel=per_channel, towers=towers)
    info_command(dest)


def register(app: typer.Typer) -> None:
    group = _model_group(app)
    group.command("info")(info_command)
    group.command("pull")(pull_command)
    group.command("export")(export_command)
    group.command("quantize")(quantize_command)
