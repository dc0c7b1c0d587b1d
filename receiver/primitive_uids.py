"""Plain UIDs into DIMSE primitives, checked once instead of three times (upstreamable, pynetdicom 3.0.4).

Every UID parameter of a DIMSE primitive is set through ``pynetdicom.utils.set_uid``: it
builds a pydicom UID (validated with pydicom's regular expressions), validates that with
pynetdicom's validator (which builds and validates another UID) and tests its conformance
with a third expression. About 7 us per UID, and the C-STORE-RSP of every object copies
two UIDs from its request. For a conformant UID of at most 64 characters all these checks
pass silently and the result is that UID: :func:`install` has the primitives check exactly
that, with one expression. Anything else (None, bytes, an empty, long, padded or
non-conformant value, custom pynetdicom validators) goes through pynetdicom's own
``set_uid``, with its errors and warnings.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pydicom import config
from pydicom.uid import RE_VALID_UID, UID
from pynetdicom import _config, _validators, dimse_primitives

_CONFORMANT = re.compile(RE_VALID_UID)


def plain_uid(text: str) -> bool:
    """Whether ``text`` is a conformant UID that pydicom and pynetdicom accept silently."""
    return len(text) <= 64 and _CONFORMANT.fullmatch(text) is not None


def default_validators() -> bool:
    """Whether pynetdicom validates AE titles and UIDs with its own functions (not custom ones)."""
    return (_config.VALIDATORS.get("AE") is _validators.validate_ae
            and _config.VALIDATORS.get("UI") is _validators.validate_ui)


def _fast_set_uid(original: Callable[..., UID | None]) -> Callable[..., UID | None]:
    def set_uid(value: Any, name: str, allow_empty: bool = True, allow_none: bool = True,
                validate: bool = True) -> UID | None:
        if isinstance(value, str) and plain_uid(value) and default_validators():
            return UID(value, config.IGNORE)  # just validated: not again
        return original(value, name, allow_empty, allow_none, validate)

    set_uid.pydicom = original  # type: ignore[attr-defined]
    return set_uid


def install() -> None:
    """Route the DIMSE primitives' UID setters through the single check (once)."""
    if not hasattr(dimse_primitives.set_uid, "pydicom"):
        dimse_primitives.set_uid = _fast_set_uid(dimse_primitives.set_uid)  # type: ignore[assignment]
