"""Test-only stand-in for the dmacvicar/libvirt 0.8.3 Terraform provider.

The real provider cannot be downloaded on the development machines and CI, so terraform
could neither validate nor plan the modules there. This program speaks the Terraform
plugin protocol (through the PyPI package ``tf``) and serves the schema transcribed in
``libvirt_0.8.3_schema.json``, so that ``terraform validate``, ``terraform plan`` and
``terraform test`` (mock_provider) check the configuration against the pinned provider's
schema. It plans but never creates anything: every create/update/delete fails with an
error. It is loaded only through a CLI-config ``dev_overrides`` written by the tests and
never ships to users.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.iface import (
    Config,
    CreateContext,
    DataSource,
    DeleteContext,
    Provider,
    ReadContext,
    Resource,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Block, NestedBlock, NestMode, Schema
from tf.utils import Diagnostics

SCHEMA_FILE = Path(__file__).with_name("libvirt_0.8.3_schema.json")
PROVIDER_ADDRESS = "registry.terraform.io/dmacvicar/libvirt"

_NESTING = {
    "list": pb.Schema.NestedBlock.NestingMode.LIST,
    "set": pb.Schema.NestedBlock.NestingMode.SET,
    "single": pb.Schema.NestedBlock.NestingMode.SINGLE,
}


class CtyType:
    """A Terraform type given in its JSON form (e.g. ``["list", "string"]``).

    Values pass through unchanged: the stand-in never interprets them.
    """

    def __init__(self, spec: Any):
        self.spec = spec

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, value: Any) -> Any:
        return value

    def semantically_equal(self, a: Any, b: Any) -> bool:
        return a == b

    def tf_type(self) -> bytes:
        return json.dumps(self.spec, separators=(",", ":")).encode()


class JsonNestedBlock(NestedBlock):
    """Nested block with any nesting mode, including LIST (``tf`` only ships SET/SINGLE)."""

    def __init__(self, type_name: str, mode: str, block: Block, min_items=None, max_items=None):
        super().__init__(type_name, NestMode.Set, block, min_items=min_items, max_items=max_items)
        self.mode = mode

    def to_pb(self) -> pb.Schema.NestedBlock:
        return pb.Schema.NestedBlock(
            type_name=self.type_name,
            block=self.block.to_pb(),
            min_items=self.min_items,
            max_items=self.max_items,
            nesting=_NESTING[self.mode],
        )

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, value: Any) -> Any:
        return value

    def semantically_equal(self, a: Any, b: Any) -> bool:
        return a == b


def _attributes(block: dict) -> list[Attribute]:
    return [
        Attribute(
            name,
            CtyType(spec["type"]),
            description=spec.get("description"),
            required=spec.get("required", False),
            optional=spec.get("optional", False),
            computed=spec.get("computed", False),
            sensitive=spec.get("sensitive", False),
        )
        for name, spec in sorted(block.get("attributes", {}).items())
    ]


def _nested_blocks(block: dict) -> list[NestedBlock]:
    out: list[NestedBlock] = []
    for name, spec in sorted(block.get("block_types", {}).items()):
        inner = spec["block"]
        out.append(
            JsonNestedBlock(
                name,
                spec["nesting_mode"],
                Block(attributes=_attributes(inner), block_types=_nested_blocks(inner)),
                min_items=spec.get("min_items"),
                max_items=spec.get("max_items"),
            )
        )
    return out


def _schema(entry: dict) -> Schema:
    block = entry["block"]
    return Schema(
        version=entry.get("version", 0),
        attributes=_attributes(block),
        block_types=_nested_blocks(block),
    )


def load_schema(path: Path = SCHEMA_FILE) -> dict:
    return json.loads(path.read_text())["provider_schemas"][PROVIDER_ADDRESS]


def _refuse(ctx, action: str) -> None:
    ctx.diagnostics.add_error(
        f"{ctx.type_name}: the libvirt stand-in cannot {action}",
        "This is the test-only schema stand-in for dmacvicar/libvirt 0.8.3. Install the real provider "
        "(terraform init without the stand-in's dev_overrides) to manage virtual machines.",
    )


def _resource_class(type_name: str, entry: dict) -> type:
    schema = _schema(entry)

    class StandInResource(Resource):
        def __init__(self, provider: "LibvirtStandIn"):
            self.provider = provider

        @classmethod
        def get_name(cls) -> str:
            return type_name.removeprefix("libvirt_")

        @classmethod
        def get_schema(cls) -> Schema:
            return schema

        def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
            _refuse(ctx, "create resources")
            return None

        def read(self, ctx: ReadContext, current: State) -> Optional[State]:
            return current

        def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
            _refuse(ctx, "update resources")
            return None

        def delete(self, ctx: DeleteContext, current: State):
            _refuse(ctx, "delete resources")

    StandInResource.__name__ = f"StandIn_{type_name}"
    return StandInResource


class LibvirtStandIn(Provider):
    def __init__(self, schema: dict):
        self._schema = schema
        self._resources = [_resource_class(t, e) for t, e in sorted(schema["resource_schemas"].items())]

    def get_model_prefix(self) -> str:
        return "libvirt_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return _schema(self._schema["provider"])

    def validate_config(self, diags: Diagnostics, config: Config):
        uri = config.get("uri")
        if isinstance(uri, str) and not uri.startswith(("qemu", "test", "lxc", "xen")):
            diags.add_error("Invalid libvirt URI", f"{uri!r} is not a libvirt connection URI.")

    def configure_provider(self, diags: Diagnostics, config: Config):
        # Nothing to connect to: planning needs no libvirt connection in the stand-in.
        return None

    def get_data_sources(self) -> list[type[DataSource]]:
        return []

    def get_resources(self) -> list[type[Resource]]:
        return self._resources

    def new_resource(self, klass):
        return klass(self)


def main(argv: list[str]) -> None:
    runner.run_provider(LibvirtStandIn(load_schema()), argv)


if __name__ == "__main__":
    main(sys.argv)
