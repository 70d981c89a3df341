"""PII redaction with offline pattern recognisers (checksums where the format has one).

Recognisers: EMAIL, PHONE (libphonenumber, any region with a leading +, else `default_region`),
CREDIT_CARD (13-19 digits, Luhn), IBAN (ISO 13616 mod-97), IP_ADDRESS (v4 and v6, parsed).
`engine="presidio"` swaps in Microsoft Presidio's predefined pattern recognisers for the same
types, run with Presidio's NoOpNlpEngine: its default setup would download a spaCy model.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneline._optional import require

ENTITIES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS")
_PRIORITY = {"EMAIL": 0, "IBAN": 1, "CREDIT_CARD": 2, "IP_ADDRESS": 3, "PHONE": 4}

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Z0-9])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


@dataclass(frozen=True)
class Span:
    """One detected entity: [start, end) in the text."""

    entity: str
    start: int
    end: int


@dataclass
class Redactor:
    """Finds and masks PII; counts what it masked per entity type."""

    entities: tuple[str, ...] = ENTITIES
    default_region: str = "US"
    counts: Counter[str] = field(default_factory=Counter)

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans, longest first where two recognisers overlap."""
        spans = self._candidates(text)
        # On equal spans the stricter format wins: "240.224.44.66" parses as a US phone number.
        spans.sort(key=lambda s: (s.start, -(s.end - s.start), _PRIORITY[s.entity]))
        kept: list[Span] = []
        for span in spans:
            if not kept or span.start >= kept[-1].end:
                kept.append(span)
        return kept

    def redact(self, text: str) -> str:
        """`text` with each entity replaced by `<ENTITY>`."""
        spans = self.find(text)
        if not spans:
            return text
        parts, position = [], 0
        for span in spans:
            parts += [text[position : span.start], f"<{span.entity}>"]
            position = span.end
            self.counts[span.entity] += 1
        parts.append(text[position:])
        return "".join(parts)

    def _candidates(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for entity in self.entities:
            spans += _FINDERS[entity](text, self.default_region)
        return spans


_PRESIDIO_NAMES = {"EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD",
                   "IBAN": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS"}
_OUR_NAMES = {presidio: ours for ours, presidio in _PRESIDIO_NAMES.items()}


@dataclass
class PresidioRedactor(Redactor):
    """Redactor whose candidate spans come from Presidio; same overlap rule, masks and counts."""

    _analyzer: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._analyzer = _presidio_analyzer(self.entities, self.default_region)

    def _candidates(self, text: str) -> list[Span]:
        wanted = [_PRESIDIO_NAMES[entity] for entity in self.entities]
        results = self._analyzer.analyze(text, language="en", entities=wanted)
        return [Span(_OUR_NAMES[r.entity_type], r.start, r.end) for r in results]


def make_redactor(
    entities: tuple[str, ...] = ENTITIES,
    default_region: str = "US",
    engine: Literal["builtin", "presidio", "auto"] = "builtin",
) -> Redactor:
    """The redactor for `engine`; `auto` is Presidio when it is installed, else the builtin one.

    Raises:
        MissingDependencyError: `engine="presidio"` without presidio-analyzer installed.
    """
    if engine == "auto":
        engine = "presidio" if importlib.util.find_spec("presidio_analyzer") else "builtin"
    kind = PresidioRedactor if engine == "presidio" else Redactor
    return kind(tuple(entities), default_region)


def _presidio_analyzer(entities: tuple[str, ...], region: str) -> Any:
    """An AnalyzerEngine with only Presidio's pattern recognisers for `entities`, no NLP model."""
    analyzer = require("presidio_analyzer")
    predefined = require("presidio_analyzer.predefined_recognizers")
    nlp_engine = require("presidio_analyzer.nlp_engine")
    tldextract = require("tldextract")
    email = predefined.EmailRecognizer()
    # tldextract's default extractor fetches the public suffix list over HTTP on first use;
    # validate against the snapshot bundled with the package instead.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email.validate_result = lambda candidate: offline(candidate).fqdn != ""
    # As in the builtin, `default_region` decides how numbers without a +code are read
    # (Presidio's default tries eight fixed regions); +code numbers match in any region.
    by_entity = {
        "EMAIL": email,
        "PHONE": predefined.PhoneRecognizer(supported_regions=(region,)),
        "CREDIT_CARD": predefined.CreditCardRecognizer(),
        "IBAN": predefined.IbanRecognizer(),
        "IP_ADDRESS": predefined.IpRecognizer(),
    }
    registry = analyzer.RecognizerRegistry(recognizers=[by_entity[e] for e in entities])
    no_nlp = nlp_engine.NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return analyzer.AnalyzerEngine(registry=registry, nlp_engine=no_nlp)


def _emails(text: str, _: str) -> list[Span]:
    return [Span("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]


# libphonenumber's matcher is slow; only texts with a run of 7+ digits can hold a number.
_PHONE_HINT = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6,}")


def _phones(text: str, region: str) -> list[Span]:
    if not _PHONE_HINT.search(text):
        return []
    phonenumbers = require("phonenumbers")
    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    return [Span("PHONE", m.start, m.end) for m in matcher]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _cards(text: str, _: str) -> list[Span]:
    spans = []
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1:
            spans.append(Span("CREDIT_CARD", match.start(), match.end()))
    return spans


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str, _: str) -> list[Span]:
    spans = []
    for match in _IBAN.finditer(text):
        candidate = match.group().rstrip()
        # The pattern is greedy over spaced groups; trim trailing groups until the checksum fits.
        while len(candidate.replace(" ", "")) >= 15:
            if _iban_ok(candidate):
                spans.append(Span("IBAN", match.start(), match.start() + len(candidate)))
                break
            candidate = candidate[:-1].rstrip()
    return spans


def _ips(text: str, _: str) -> list[Span]:
    spans = []
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            try:
                ipaddress.ip_address(match.group())
            except ValueError:
                continue
            spans.append(Span("IP_ADDRESS", match.start(), match.end()))
    return spans


_FINDERS = {"EMAIL": _emails, "PHONE": _phones, "CREDIT_CARD": _cards, "IBAN": _ibans,
            "IP_ADDRESS": _ips}
