"""The admin's shared pieces: a read-only history inline, list filters declared as choices, and an
action that runs a remote call for each selected row and reports each failure by name."""

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest


class HistoryInline(admin.TabularInline):
    """Rows recorded by the broker (attempts, status changes), shown under their parent: never added,
    changed or deleted by hand. A subclass names its model and `fields`."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields or ()

    def has_add_permission(self, request, obj=None):
        return False


class ChoicesFilter(admin.SimpleListFilter):
    """A list filter written as a table: value → (label, what it does to the queryset). A subclass
    sets `title`, `parameter_name` and `options`; an unknown value filters nothing."""

    options: ClassVar[dict[str, tuple[str, Callable[[QuerySet], QuerySet]]]] = {}

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.options.items()]

    def queryset(self, request, queryset):
        choice = self.options.get(self.value() or "")
        return choice[1](queryset) if choice else queryset


def for_each_reporting(
    request: HttpRequest,
    objects: Iterable[Any],
    call: Callable[[Any], object],
    *,
    failures: tuple[type[Exception], ...],
) -> int:
    """Calls `call` for each object; a failure named in `failures` is one error message naming the
    object and the rest go on. Returns how many calls succeeded."""
    done = 0
    for obj in objects:
        try:
            call(obj)
        except failures as exc:
            messages.error(request, f"{obj}: {exc}")
        else:
            done += 1
    return done
