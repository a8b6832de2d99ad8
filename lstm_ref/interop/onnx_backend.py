"""lstm_ref's runner as an ``onnx.backend.base.Backend``, so that ONNX's own backend test
suite (``onnx.backend.test.BackendTest``) runs against it::

    import onnx.backend.test
    from lstm_ref.interop.onnx_backend import ReferenceBackend

    tests = onnx.backend.test.BackendTest(ReferenceBackend, __name__)
    tests.include(r"test_lstm_.*")
    globals().update(tests.enable_report().test_cases)

The backend computes in each model's own types (``ReferenceSession(model)``), on the CPU.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from ..errors import InputError
from .onnx_runner import ReferenceSession


class ReferenceRep(BackendRep):
    """A prepared model: ``run`` takes its inputs in the graph's order (or by name)."""

    def __init__(self, session: ReferenceSession) -> None:
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        names = [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            inputs = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
            if len(inputs) != len(names):
                raise InputError(f"{len(inputs)} inputs; the model takes {names}")
            feeds = dict(zip(names, inputs, strict=True))
        outputs = [o.name for o in self.session.get_outputs()]
        return namedtupledict("Outputs", outputs)(*self.session.run(None, feeds))


class ReferenceBackend(Backend):
    """ONNX's backend interface over :class:`ReferenceSession`."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> ReferenceRep:
        super().prepare(model, device, **kwargs)  # onnx.checker
        return ReferenceRep(ReferenceSession(model))

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Any = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """One node on its inputs, in the order it names them (None for an omitted one);
        the outputs it names."""
        from .onnx_ops import run_node

        super().run_node(node, inputs, device, outputs_info, **kwargs)
        opset = int(kwargs.get("opset_version", onnx.defs.onnx_opset_version()))
        outputs = run_node(node, list(inputs), opset)
        named = [(n, y) for n, y in zip(node.output, outputs, strict=False) if n]
        return namedtupledict("Outputs", [n for n, _ in named])(*(y for _, y in named))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
