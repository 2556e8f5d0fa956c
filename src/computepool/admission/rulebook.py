"""The data-residency ``Rulebook``: rules as data (``catalog/data/rulebook.yaml``), validated.

A rule maps (data class, origin jurisdiction) to the jurisdictions where the data may be
processed, through ordered *grants* with conditions (approvals on record, person-count
thresholds per calendar year, the stricter automotive reading). Loading never guesses: a bad
file raises ``RulebookError`` naming the file, the field and the reason.

An operator overrides the shipped rules with a file of their own; ``extends: default`` merges
it over the shipped rulebook (same ``id`` replaces the shipped rule in place, new rules go first
so they win the first-match, top-level settings override).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from computepool.catalog.errors import is_union_tag

ANY = "*"
ORIGIN = "origin"
SHIPPED = "default"


class RulebookError(ValueError):
    """A rulebook file is wrong: ``str(err)`` names the file, the field and the reason."""

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path, self.problems = path, problems
        lines = [f"{path}: {field}: {reason}" for field, reason in problems]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grant(_Strict):
    """One way data of a rule may go to ``to``; every condition must hold."""

    to: tuple[str, ...] = Field(min_length=1)
    requires: tuple[str, ...] = ()
    #: Persons already exported this calendar year (by the dataset's handler, on ``counter``)
    #: plus this dataset's persons must stay below this number.
    persons_below: int | None = Field(default=None, gt=0)
    counter: Literal["sensitive", "non_sensitive"] | None = None
    #: Not available under the stricter automotive reading.
    relaxed_only: bool = False
    note: str = ""


class Rule(_Strict):
    id: str = Field(min_length=1)
    title: str = ""
    data_classes: tuple[str, ...] = Field(min_length=1)
    origins: tuple[str, ...] = Field(min_length=1)
    #: Applies only to datasets whose handler is listed in ``ciio_handlers``.
    ciio_only: bool = False
    when_anonymised: str | None = None
    allow: tuple[Grant, ...] = ()
    basis: str = Field(min_length=1)
    sources: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _id_is_token(cls, v: str) -> str:
        if any(c.isspace() or c in ",#:" for c in v):
            raise ValueError("a rule id must not contain spaces, ',', '#' or ':'")
        return v


class Fallback(_Strict):
    id: str = "UNMATCHED"
    to: tuple[str, ...] = (ORIGIN,)
    basis: str = "data no rule covers stays in its origin jurisdiction"


class Note(_Strict):
    id: str
    text: str
    sources: tuple[str, ...] = ()


class RulebookFile(_Strict):
    version: Literal[1] = 1
    extends: Literal["default"] | None = None
    automotive_strict: bool = True
    ciio_handlers: tuple[str, ...] = ()
    unmatched: Fallback = Fallback()
    approval_kinds: dict[str, str] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Rulebook:
    """Validated rules in first-match order, plus the settings that change their reading."""

    rules: tuple[Rule, ...]
    approval_kinds: Mapping[str, str]
    automotive_strict: bool = True
    ciio_handlers: frozenset[str] = frozenset()
    unmatched: Fallback = Fallback()
    notes: tuple[Note, ...] = ()
    source: str = ""

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @cached_property
    def data_classes(self) -> frozenset[str]:
        """Data classes some rule names (``*`` among them: every class is known)."""
        return frozenset(c for r in self.rules for c in r.data_classes)

    def knows_class(self, data_class: str) -> bool:
        return ANY in self.data_classes or data_class in self.data_classes

    def unknown_classes(self, classes: Sequence[str]) -> list[tuple[int, str]]:
        """(position, reason) of each class no rule names: such data would be decided by the
        ``unmatched`` fallback, so a submission naming one is refused instead."""
        known = ", ".join(sorted(self.data_classes))
        return [
            (i, f"unknown data class {c!r}; the residency rules know: {known}")
            for i, c in enumerate(classes)
            if not self.knows_class(c)
        ]

    def match(self, data_class: str, origin: str, handler: str = "") -> Rule | None:
        """The first rule governing data of ``data_class`` from ``origin`` held by ``handler``."""
        ciio = handler in self.ciio_handlers
        for r in self.rules:
            if r.ciio_only and not ciio:
                continue
            if (data_class in r.data_classes or ANY in r.data_classes) and (
                origin in r.origins or ANY in r.origins
            ):
                return r
        return None

    def with_settings(self, **changes: Any) -> Rulebook:
        """A copy with e.g. ``automotive_strict`` or ``ciio_handlers`` changed."""
        kw = {
            "rules": self.rules,
            "approval_kinds": self.approval_kinds,
            "automotive_strict": self.automotive_strict,
            "ciio_handlers": self.ciio_handlers,
            "unmatched": self.unmatched,
            "notes": self.notes,
            "source": self.source,
        }
        kw.update(changes)
        kw["ciio_handlers"] = frozenset(kw["ciio_handlers"])
        return Rulebook(**kw)


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in (p for p in loc if not is_union_tag(p)):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _check(doc: RulebookFile) -> list[tuple[str, str]]:
    """Cross-field checks pydantic cannot express: ids, approval kinds, counters, cycles."""
    problems: list[tuple[str, str]] = []
    kinds = set(doc.approval_kinds)
    seen: dict[str, int] = {}
    for i, r in enumerate(doc.rules):
        if r.id in seen:
            problems.append(
                (f"rules[{i}].id", f"duplicate rule id {r.id!r} (also rules[{seen[r.id]}])")
            )
        seen.setdefault(r.id, i)
        if not r.allow:
            problems.append(
                (f"rules[{i}].allow", f"rule {r.id} allows nothing; list at least one grant")
            )
        for g, grant in enumerate(r.allow):
            where = f"rules[{i}].allow[{g}]"
            for k in grant.requires:
                if k not in kinds:
                    known = ", ".join(sorted(kinds)) or "none"
                    problems.append(
                        (f"{where}.requires", f"unknown approval kind {k!r} (known: {known})")
                    )
            if (grant.persons_below is None) != (grant.counter is None):
                problems.append(
                    (where, "persons_below and counter go together: set both or neither")
                )
    classes = {c for r in doc.rules for c in r.data_classes}
    for i, r in enumerate(doc.rules):
        if r.when_anonymised is not None and r.when_anonymised not in classes:
            problems.append(
                (f"rules[{i}].when_anonymised", f"no rule covers data class {r.when_anonymised!r}")
            )
    anon = {c: r.when_anonymised for r in doc.rules for c in r.data_classes if r.when_anonymised}
    for start in anon:
        cur, path = start, [start]
        while cur in anon:
            cur = anon[cur]
            if cur in path:
                problems.append(
                    ("rules", f"when_anonymised forms a cycle: {' -> '.join([*path, cur])}")
                )
                break
            path.append(cur)
    return problems


def _merge(base: RulebookFile, over: RulebookFile) -> RulebookFile:
    over_ids = {r.id for r in over.rules}
    base_ids = {r.id for r in base.rules}
    replaced = {r.id: r for r in over.rules if r.id in base_ids}
    new_first = [r for r in over.rules if r.id not in base_ids]
    rules = tuple(new_first) + tuple(replaced.get(r.id, r) for r in base.rules)
    set_fields = over.model_fields_set
    return RulebookFile(
        automotive_strict=over.automotive_strict
        if "automotive_strict" in set_fields
        else base.automotive_strict,
        ciio_handlers=over.ciio_handlers if "ciio_handlers" in set_fields else base.ciio_handlers,
        unmatched=over.unmatched if "unmatched" in set_fields else base.unmatched,
        approval_kinds={**base.approval_kinds, **over.approval_kinds},
        rules=rules,
        notes=base.notes + tuple(n for n in over.notes if n.id not in over_ids),
    )


def _read(path: str | Path | None) -> tuple[str, Any]:
    if path is None or str(path) == SHIPPED:
        ref = resources.files("computepool.catalog") / "data" / "rulebook.yaml"
        label, text = "rulebook.yaml (shipped)", ref.read_text()
    else:
        p = Path(path)
        if not p.exists():
            raise RulebookError(str(p), [("(file)", "no such file")])
        label, text = str(p), p.read_text()
    try:
        return label, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise RulebookError(
            label, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None


def parse_rulebook(doc: Any, label: str = "<rulebook>") -> RulebookFile:
    if not isinstance(doc, dict):
        raise RulebookError(label, [("(top level)", "expected a mapping with a 'rules' list")])
    try:
        parsed = RulebookFile.model_validate(doc)
    except ValidationError as exc:
        raise RulebookError(
            label, [(field_path(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    return parsed


def load_rulebook(path: str | Path | None = None) -> Rulebook:
    """The shipped rulebook (``None`` or ``"default"``) or an operator's YAML file."""
    label, doc = _read(path)
    parsed = parse_rulebook(doc, label)
    if parsed.extends == SHIPPED:
        base_label, base_doc = _read(None)
        parsed = _merge(parse_rulebook(base_doc, base_label), parsed)
    problems = _check(parsed)
    if problems:
        raise RulebookError(label, problems)
    return Rulebook(
        rules=parsed.rules,
        approval_kinds=dict(parsed.approval_kinds),
        automotive_strict=parsed.automotive_strict,
        ciio_handlers=frozenset(parsed.ciio_handlers),
        unmatched=parsed.unmatched,
        notes=parsed.notes,
        source=label,
    )
