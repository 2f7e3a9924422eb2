"""The workset's plain row classes mirror the ORM models that define the schema.

The control plane's write path reads and writes rows through ``recorder.store.workset``
(plain dataclasses, for speed); the read side and the migrations go by
``recorder.store.models``. A column added to one and not the other would be silently
dropped or fail only at run time, so they are compared here: the same columns, each with
the same Python type and the same nullability.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from recorder.store import models, workset

PAIRS: list[tuple[type, type[models.Base]]] = [
    (workset.ExecRow, models.Execution),
    (workset.OpRow, models.Operation),
    (workset.CallbackRow, models.Callback),
    (workset.StateRow, models.EngineState),
]


def _field_types(row_cls: type) -> dict[str, tuple[type, bool]]:
    """Each field's (type, nullable) from its annotation."""
    hints = typing.get_type_hints(row_cls)
    out: dict[str, tuple[type, bool]] = {}
    for f in dataclasses.fields(row_cls):
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
        if args:
            (base,) = [a for a in args if a is not type(None)]
            out[f.name] = (base, True)
        else:
            out[f.name] = (hint, False)
    return out


def _column_types(model: type[models.Base]) -> dict[str, tuple[type, bool]]:
    table = model.__table__
    return {c.name: (c.type.python_type, bool(c.nullable)) for c in table.columns}


@pytest.mark.parametrize(("row_cls", "model"), PAIRS, ids=[r.__name__ for r, _ in PAIRS])
def test_a_workset_row_has_the_models_columns_types_and_nullability(row_cls: type, model: type[models.Base]) -> None:
    fields = _field_types(row_cls)
    columns = _column_types(model)
    assert sorted(fields) == sorted(columns), f"{row_cls.__name__} and {model.__name__} differ in their columns"
    for name, (py_type, nullable) in columns.items():
        assert fields[name] == (py_type, nullable), (
            f"{row_cls.__name__}.{name} is {fields[name]}, the {model.__tablename__} column is {(py_type, nullable)}"
        )


def test_the_comparison_notices_a_difference() -> None:
    @dataclasses.dataclass
    class Short:
        execution_id: str
        token: str  # nullable in the model

    assert sorted(_field_types(Short)) != sorted(_column_types(models.EngineState))
    assert _field_types(Short)["token"] != _column_types(models.EngineState)["token"]
