"""sysinv.helm.lifecycle_hook: LifecycleHookInfo (a SysinvObject in sysinv; a plain object here)."""

import copy
from typing import Any


class LifecycleHookInfo:
    mode: str | None = None
    lifecycle_type: str | None = None
    relative_timing: str | None = None
    operation: str | None = None
    extra: dict[str, Any] | None = None

    def __init__(self) -> None:
        self.extra = {}

    def init(
        self, mode: str | None, lifecycle_type: str, relative_timing: str, operation: str
    ) -> None:
        self.mode = mode
        self.relative_timing = relative_timing
        self.lifecycle_type = lifecycle_type
        self.operation = operation
        self.extra = {}

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def __copy__(self) -> "LifecycleHookInfo":
        instance = type(self).__new__(type(self))
        instance.__dict__.update(self.__dict__)
        return instance

    def __deepcopy__(self, memo: dict[int, Any]) -> "LifecycleHookInfo":
        hook = copy.copy(self)
        hook.extra = copy.deepcopy(self.extra, memo)
        return hook

    def __repr__(self) -> str:
        return (
            f"LifecycleHookInfo(mode={self.mode!r}, type={self.lifecycle_type!r}, "
            f"timing={self.relative_timing!r}, operation={self.operation!r}, extra={self.extra!r})"
        )
