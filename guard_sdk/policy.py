"""A deployment's policy over the harm categories a bundle scores (docs/policy.md).

The unsafe head decides the one-bit verdict as before; the categories say which harm, and a policy lets an app
decide which harms it blocks:

- ``enforce``: the categories this app blocks (None: every one the bundle scores); ``allow``: never blocked.
- ``thresholds``: a category's own cut, replacing the bundle's; a category given one here is a violation by its
  score alone, even where P(unsafe) stays under the guard's threshold (a stricter rule for that harm).
- ``uncategorised``: what an unsafe text that no category explains is, "block" (default) or "allow".

``decide`` applies it, and every runtime (this one, the Java core) follows the same steps: the violations are the
enforced categories at or over their threshold, most confident first; the text is unsafe when a category with a
policy threshold is violated, or when P(unsafe) is at or over the threshold and what explains it is not released:
the categories over their thresholds are not all released (allowed, or not enforced), or, where none is over, the
policy blocks uncategorised texts. With no policy (``Policy()``) that is exactly P(unsafe) >= threshold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from guard_sdk.errors import PolicyError

UNCATEGORISED = ("block", "allow")


@dataclass(frozen=True)
class Policy:
    enforce: tuple[str, ...] | None = None
    allow: tuple[str, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    uncategorised: str = "block"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "policy") -> Policy:
        """A policy from its JSON object (policy.schema.json), refused with the first problem."""
        errors = sorted(_validator().iter_errors(dict(data)), key=lambda e: list(e.absolute_path))
        if errors:
            raise PolicyError(f"{where}: {errors[0].json_path}: {errors[0].message}")
        for name, cut in data.get("thresholds", {}).items():
            if not 0 <= cut <= 1:  # the schema's bounds let NaN through (every comparison with it is false)
                raise PolicyError(f"{where}: $.thresholds.{name}: {cut} is outside [0, 1]")
        enforce = data.get("enforce")
        policy = cls(enforce=None if enforce is None else tuple(enforce), allow=tuple(data.get("allow", ())),
                     thresholds=dict(data.get("thresholds", {})), uncategorised=data.get("uncategorised", "block"))
        both = set(policy.allow) & set(policy.enforce or ())
        if both:
            raise PolicyError(f"{where}: {', '.join(sorted(both))} both enforced and allowed")
        return policy

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """A policy file: one JSON object (docs/policy.md)."""
        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as e:
            raise PolicyError(f"{path}: cannot read the policy file ({e.strerror})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PolicyError(f"{path}: not a JSON policy file ({e})") from None
        if not isinstance(data, dict):
            raise PolicyError(f"{path}: a policy file holds one JSON object")
        return cls.from_dict(data, str(path))

    def check(self, scored: Sequence[str]) -> None:
        """Refuse a policy that names a category the bundle does not score: it would silently do nothing."""
        named = set(self.enforce or ()) | set(self.allow) | set(self.thresholds)
        unknown = sorted(named - set(scored))
        if unknown:
            held = ", ".join(scored) if scored else "none (a bundle without a category head)"
            raise PolicyError(f"the policy names {', '.join(unknown)}, which this bundle does not score; it scores: "
                              f"{held}")

    def enforced(self, category: str) -> bool:
        return (self.enforce is None or category in self.enforce) and category not in self.allow


PolicyLike = Policy | Mapping[str, Any] | str | Path | None  # what Guard.load and classify take as a policy


def as_policy(value: PolicyLike) -> Policy | None:
    """What Guard.load and classify take as a policy: a Policy, its JSON object, or a policy file's path."""
    if value is None or isinstance(value, Policy):
        return value
    if isinstance(value, Mapping):
        return Policy.from_dict(value)
    if isinstance(value, (str, Path)):
        return Policy.load(value)
    raise PolicyError(f"a policy is a Policy, a mapping or a file path, got {type(value).__name__}")


def decide(score: float, threshold: float, categories: Mapping[str, float], thresholds: Mapping[str, float],
           policy: Policy) -> tuple[bool, tuple[str, ...]]:
    """(unsafe, violations) of one text: ``score`` is P(unsafe), ``categories`` each category's score and
    ``thresholds`` the bundle's cut of each; see the module docstring for the rule."""
    over = over_thresholds(categories, {name: policy.thresholds.get(name, thresholds[name]) for name in categories})
    violations = tuple(n for n in over if policy.enforced(n))
    strict = any(name in policy.thresholds for name in violations)
    if score < threshold:
        return strict, violations
    explained = bool(violations) if over else policy.uncategorised == "block"
    return strict or explained, violations


def over_thresholds(categories: Mapping[str, float], thresholds: Mapping[str, float]) -> tuple[str, ...]:
    """The categories scored at or over their thresholds, most confident first (ties by name)."""
    return tuple(sorted((n for n, p in categories.items() if p >= thresholds[n]), key=lambda n: (-categories[n], n)))


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(resources.files("guard_sdk").joinpath("policy.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)
