"""template.yaml as data: a YAML loader for CloudFormation short forms and the functions and
layers SAM builds from it. Shared by infra/build_lambda.py and tests/infra."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class BuildError(Exception):
    """The template, a requirements file or the environment does not allow a correct build."""


# A SafeLoader that reads CloudFormation short forms (``!Ref X`` -> ``{"Ref": "X"}``,
# ``!Sub s`` -> ``{"Fn::Sub": s}``), so tools and tests can walk the template as data.
_CfnLoader: Any = type("_CfnLoader", (yaml.SafeLoader,), {})


def _construct_intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise BuildError(f"{path} is not a CloudFormation template (no Resources)")
    return data


@dataclass(frozen=True)
class LayerSpec:
    logical_id: str
    content_uri: Path
    build_method: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    layers: tuple[str, ...]


def read_specs(template: dict[str, Any]) -> tuple[dict[str, LayerSpec], list[FunctionSpec]]:
    resources: dict[str, Any] = template["Resources"]
    globals_fn = template.get("Globals", {}).get("Function", {})
    layers: dict[str, LayerSpec] = {}
    functions: list[FunctionSpec] = []
    for logical_id, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::LayerVersion":
            method = res.get("Metadata", {}).get("BuildMethod")
            if not method:
                raise BuildError(f"layer {logical_id} has no Metadata.BuildMethod")
            layers[logical_id] = LayerSpec(logical_id, ROOT / props["ContentUri"], method)
        elif res["Type"] == "AWS::Serverless::Function":
            refs = props.get("Layers", globals_fn.get("Layers", []))
            layer_ids = tuple(r["Ref"] for r in refs if isinstance(r, dict) and "Ref" in r)
            handler = props.get("Handler", globals_fn.get("Handler"))
            functions.append(FunctionSpec(logical_id, ROOT / props["CodeUri"], handler, layer_ids))
    for fn in functions:
        missing = [lid for lid in fn.layers if lid not in layers]
        if missing:
            raise BuildError(f"{fn.logical_id} references unknown layers {missing}")
    return layers, functions
