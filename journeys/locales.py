"""Localised message content, as pure functions.

A message's `content` may hold `locales`: `{"de": {...}, "fr-CA": {...}}`, each with some of
the content's own fields. The user's `locale` trait picks one (`pick`): the exact tag, then
ever shorter prefixes of it (`zh-Hant-TW` → `zh-Hant` → `zh`), then none, meaning the base
content. Tags compare without regard to case, and a trait written the POSIX way (`de_CH`,
`de_CH.UTF-8`) counts as its tag (`de-CH`). The picked locale's fields replace the base's
one by one (`localise`): a field the locale leaves out is the base's, so a translation may
give only the words and keep the base's links, data and headers. Some fields say one thing
twice (an email's plain-text `body` and its `html`): a language changes both or neither
(`half_translated`), or its users would read the base's words in the one their client shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOCALES = "locales"
"""The content field that holds the localised contents, by tag."""
LOCALE_TRAIT = "locale"
"""The user trait that picks the content."""
TOGETHER: Mapping[str, tuple[tuple[str, str], ...]] = {"email": (("body", "html"),)}
"""Per channel, the fields that say the same thing in two forms: translated together."""
BASE = "base"
"""How stats name the base content; never a tag, as a tag's language has 2 or 3 letters."""

_TAG = re.compile(
    r"[a-z]{2,3}"  # language (ISO 639)
    r"(-[a-z]{4})?"  # script (ISO 15924), e.g. Hant
    r"(-([a-z]{2}|[0-9]{3}))?"  # region (ISO 3166 or UN M.49), e.g. CH, 419
    r"(-([a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*",  # variants, e.g. 1901
    re.IGNORECASE,
)
_POSIX_SUFFIX = re.compile(r"[.@].*$")  # de_CH.UTF-8, ca_ES@valencia


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a locale tag a content's `locales` may be keyed by, or None."""
    if _TAG.fullmatch(tag):
        return None
    if "_" in tag and _TAG.fullmatch(tag.replace("_", "-")):
        return f"write the tag with '-': '{tag.replace('_', '-')}'"
    return (
        "not a language tag: a language (2 or 3 letters), then optionally a script, a region "
        "and variants, joined by '-' (e.g. de, de-CH, pt-BR, zh-Hant-TW, es-419)"
    )


def tag_of(value: Any) -> str | None:
    """The tag a `locale` trait names, lower-cased (`de_CH.UTF-8` → `de-ch`), or None when
    it names none."""
    if not isinstance(value, str):
        return None
    tag = _POSIX_SUFFIX.sub("", value.strip()).replace("_", "-").lower()
    return tag if _TAG.fullmatch(tag) else None


def pick(tags: Iterable[str], wanted: Any) -> str | None:
    """Which of `tags` (as written) a user whose `locale` trait is `wanted` gets: the exact
    tag, then each shorter prefix of it down to its language; None for the base content."""
    tag = tag_of(wanted)
    if tag is None:
        return None
    by_lower = {written.lower(): written for written in tags}
    subtags = tag.split("-")
    for size in range(len(subtags), 0, -1):
        found = by_lower.get("-".join(subtags[:size]))
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Localised:
    """A message's content as one user gets it (no `locales` left), and the locale it came
    from (None: the base content)."""

    content: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None


def localise(content: Mapping[str, Any], wanted: Any) -> Localised:
    """The content a user whose `locale` trait is `wanted` gets: the base's fields, each
    replaced by the picked locale's field where it gives one."""
    base = {name: value for name, value in content.items() if name != LOCALES}
    locales = content.get(LOCALES)
    if not isinstance(locales, Mapping):
        return Localised(base)
    chosen = pick(locales, wanted)
    given = locales.get(chosen) if chosen is not None else None
    if not isinstance(given, Mapping):
        return Localised(base)
    # A nested `locales` is refused by validation; tolerated here, it is simply not content.
    return Localised({**base, **{k: v for k, v in given.items() if k != LOCALES}}, chosen)


def for_user(content: Mapping[str, Any], traits: Mapping[str, Any]) -> Localised:
    """`localise` by the user's `locale` trait."""
    return localise(content, traits.get(LOCALE_TRAIT))


def half_translated(
    channel: str, content: Mapping[str, Any], given: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The fields a language (`given`) must translate too, with why: one of two fields that
    say the same thing (`TOGETHER`) it leaves to the base while it changes the other, when the
    base has both."""
    missing = []
    for pair in TOGETHER.get(channel, ()):
        if all(isinstance(content.get(name), str) for name in pair):
            gives = [name in given for name in pair]
            if any(gives) and not all(gives):
                changed, left = pair if gives[0] else pair[::-1]
                why = (
                    f"translate {left} too: this language changes {changed}, so its users "
                    f"would get the base's {left} with it"
                )
                missing.append((left, why))
    return missing
