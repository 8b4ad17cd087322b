"""How BOI arguments cross pywin32: ByRef outputs as typed by-reference VARIANTs (issue 19 item 1).

ProvideX returns BOI outputs through ByRef arguments: ``nGetValue(column$, ByRef value)``,
``nGetNextPurchaseOrderNo(ByRef no$)`` (reference sage100.md §1.2, §1.5; .NET clients mark them ByRef
explicitly, [O][S1][S1b]). pywin32 only fills a ByRef argument of a *late-bound* (dynamic) object when
the caller passes a ``win32com.client.VARIANT`` carrying ``pythoncom.VT_BYREF``; a plain Python value is
passed by value and the output is lost. pywin32's documentation ("win32com.client.VARIANT",
https://mhammond.github.io/pywin32/html/com/win32com/HTML/variant.html) says the automatic conversion
"doesn't work very well, particularly when using 'dynamic' (aka late-bound) objects", shows an
``[in,out] BSTR*`` method that works with makepy support but "does not work as expected" through
``DumbDispatch``, and fixes it with ``VARIANT(pythoncom.VT_BYREF | pythoncom.VT_BSTR, …)`` whose
``.value`` holds the output after the call. With type information (makepy / early binding) pywin32
instead returns ``(return value, out1, …)`` as a tuple.

So every output argument is passed as a typed by-reference VARIANT and read back from ``.value``; when
the call returns a tuple (type information exists) the tuple wins. Without pywin32 (Linux, tests) a
small stand-in with the same two attributes (``varianttype``, ``value``) is used, and the test double
fills it exactly as the COM layer would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# pythoncom.VT_* values (the stand-in uses the same numbers as the real constants).
VT_I4 = 3
VT_R8 = 5
VT_BSTR = 8
VT_BYREF = 0x4000


class StandInVariant:
    """``win32com.client.VARIANT`` stand-in for machines without pywin32 (same attribute names)."""

    def __init__(self, varianttype: int, value: Any) -> None:
        self.varianttype = varianttype
        self.value = value

    def __repr__(self) -> str:
        return f"StandInVariant({self.varianttype}, {self.value!r})"


def _variant_class() -> tuple[Callable[[int, Any], Any], int, int, int]:
    """(VARIANT class, VT_BYREF, VT_BSTR, VT_R8) from pywin32 when installed, else the stand-in."""
    try:
        import pythoncom  # type: ignore[import-not-found]
        from win32com.client import VARIANT  # type: ignore[import-not-found]
    except ImportError:
        return StandInVariant, VT_BYREF, VT_BSTR, VT_R8
    return VARIANT, pythoncom.VT_BYREF, pythoncom.VT_BSTR, pythoncom.VT_R8


@dataclass(frozen=True)
class Out:
    """Marks one ByRef output argument: a string (``$``) or a number."""

    kind: str  # "str" | "num"


OUT_STR = Out("str")
OUT_NUM = Out("num")


def out_for(column: str) -> Out:
    """Column names ending in ``$`` are strings; numeric columns have no ``$`` (ref §1.2)."""
    return OUT_STR if column.endswith("$") else OUT_NUM


class Marshaller:
    """Builds the arguments of one call and reads the outputs back.

    ``byref = "variant"`` (default) passes each :class:`Out` as a by-reference VARIANT; ``"plain"`` passes
    ``""``/``0`` (only for a typed install where a VARIANT misbehaves; outputs then come from the tuple).
    """

    def __init__(self, byref: str = "variant") -> None:
        if byref not in ("variant", "plain"):
            raise ValueError("byref must be 'variant' or 'plain'")
        self.byref = byref
        self._variant, self._vt_byref, self._vt_bstr, self._vt_r8 = _variant_class()

    def arg(self, value: Any) -> Any:
        if not isinstance(value, Out):
            return value
        initial: Any = "" if value.kind == "str" else 0.0
        if self.byref == "plain":
            return initial
        vt = self._vt_byref | (self._vt_bstr if value.kind == "str" else self._vt_r8)
        return self._variant(vt, initial)

    def call(self, obj: Any, method: str, *args: Any) -> tuple[Any, tuple[Any, ...]]:
        """Invoke ``obj.method(*args)``; return (return code, outputs in the order of the Out markers)."""
        passed = [self.arg(a) for a in args]
        result = getattr(obj, method)(*passed)
        if isinstance(result, tuple):  # type information: pywin32 returns (retval, out1, ...)
            return (result[0] if result else 0), tuple(result[1:])
        outs = tuple(
            p.value if hasattr(p, "varianttype") else p
            for p, a in zip(passed, args, strict=True)
            if isinstance(a, Out)
        )
        return result, outs
