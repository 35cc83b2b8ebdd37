"""Templates -> per-language variants (CSS inlined once) -> per-recipient ``RenderedContent``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from ..errors import RenderError
from ..mail.message import header_safe
from ..models import Campaign, Contact, RenderedContent, RenderedLetter
from .bilingual import TEXT_DIVIDER, combine_documents, notice_text
from .fields import default_filter
from .inline import (
    JINJA_RE,
    Unsupported,
    flatten,
    inline_verified,
    premailer_inline,
    text_once,
)
from .letters import LetterError, Letters
from .links import Unsubscribe
from .plaintext import html_to_text
from .typography import french_html, french_text, typeset_source, typeset_subject

_VARIANT_RE = re.compile(r"^([a-z]{2})\.html$")
# Computed names that every recipient has, whatever the list's columns.
COMPUTED = (
    "email",
    "first_name",
    "last_name",
    "display_name",
    "language",
    "member_id",
    "campaign",
    "list_id",
    "unsubscribe_url",
    "identification",
)
VERIFY_SAMPLE = 5
_T = TypeVar("_T")


def _environment(folder: Path, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
    )
    env.filters["default"] = env.filters["d"] = default_filter  # empty cells too
    return env


@dataclass(frozen=True)
class Variant:
    """One language's compiled templates and how they were prepared."""

    language: str
    subject: jinja2.Template
    html: jinja2.Template  # CSS inlined already, unless inline_once is False
    text: jinja2.Template | None  # None: derive the text per recipient
    inline_once: bool
    warnings: tuple[str, ...]
    fixed_subject: str = ""  # set when the subject has no template syntax
    order: tuple[str, ...] = ()  # the languages of its sections, in order (combined: several)
    typeset_html: bool = False  # French spaces set per message (the template could not be)
    typeset_text: bool = False  # French spaces set per message in a .txt template's output


class Renderer:
    """Compiles each language variant once and renders recipients through it."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        folder = campaign.template
        self.html_env = _environment(folder, autoescape=True)
        self.text_env = _environment(folder, autoescape=False)
        self.languages = sorted(
            m.group(1) for p in folder.iterdir() if (m := _VARIANT_RE.match(p.name))
        )
        if campaign.default_language not in self.languages:
            raise RenderError(
                f"{folder}: no {campaign.default_language}.html for the default language "
                f"(found: {', '.join(self.languages) or 'no <language>.html files'})"
            )
        self.variants: dict[str, Variant] = {}
        self.unsubscribe = Unsubscribe(campaign)
        # Shown in the footer (CASL): {{ identification.name }}, .mailing_address, .contact.
        ident = campaign.identification
        self.identification = {
            lang: {
                "name": ident.name_for(lang),
                "mailing_address": ident.mailing_address,
                "contact": ident.contact,
            }
            if ident
            else {}
            for lang in self.languages
        }
        self.combined = campaign.bilingual == "combined"
        letter = campaign.letter
        self.letters = Letters(letter, self.languages) if letter else None
        self.offers_letter = self.letters is not None  # until prepare() reads the templates
        self.notes: list[str] = []  # warnings about the whole campaign, not one variant

    def content_language(self, language: str) -> str:
        """The Content-Language of a variant: one code, or all of them when combined."""
        if not self.combined:
            return language
        return ", ".join([language, *(lang for lang in self.languages if lang != language)])

    def language_for(self, contact: Contact) -> str:
        """The variant a contact gets: their language if the template has it, else the default."""
        return (
            contact.language
            if contact.language in self.languages
            else (self.campaign.default_language)
        )

    def context(self, contact: Contact, unsubscribe_url: str = "") -> dict[str, Any]:
        """Row columns, then the campaign's vars, then computed values (later ones win)."""
        language = self.language_for(contact)
        ctx: dict[str, Any] = dict(contact.fields)
        ctx.update(self.campaign.vars)
        ctx.update(
            email=contact.email,
            first_name=contact.first_name,
            last_name=contact.last_name,
            display_name=contact.display_name,
            language=language,
            member_id=contact.member_id,
            campaign=self.campaign.name,
            list_id=self.campaign.list_id,
            unsubscribe_url=unsubscribe_url or self.unsubscribe.url(contact.key, language),
            identification=self.identification[language],
        )
        if self.offers_letter:
            ctx["letter_mailto"] = self._letter(ctx, contact, language).mailto
        return ctx

    def _letter(self, ctx: Mapping[str, Any], contact: Contact, language: str) -> RenderedLetter:
        assert self.letters is not None
        letters = self.letters
        return self._guard(contact, lambda: letters.render(ctx, language))

    def letter_for(self, contact: Contact) -> RenderedLetter | None:
        """The letter this member is offered (None without ``letter:``), for previews."""
        if self.letters is None:
            return None
        ctx = self.context(contact)
        return self._letter(ctx, contact, ctx["language"])

    def _compile(self, env: SandboxedEnvironment, source: str, label: str) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"{label}:{exc.lineno}: {exc.message}") from None

    def _check_names(self, available: set[str]) -> None:
        """Every name a template reads must exist for every recipient: found before sending."""
        folder = self.campaign.template
        used: set[str] = set()
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".html", ".txt"):
                continue
            try:
                ast = self.html_env.parse(path.read_text(encoding="utf-8"))
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"{path}:{exc.lineno}: {exc.message}") from None
            used |= meta.find_undeclared_variables(ast)
            missing = sorted(meta.find_undeclared_variables(ast) - available)
            if missing:
                hint = {
                    "identification": "declare identification: in the campaign",
                    "letter_mailto": "declare letter: in the campaign",
                }.get(missing[0], "not a list column, a var in the campaign, or a computed value")
                raise RenderError(f"{path}: undefined variable {missing[0]!r} ({hint})")
        for language, subject in self.campaign.subject.items():
            try:
                ast = self.text_env.parse(subject)
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"{self.campaign.source}: subject.{language}: {exc}") from None
            missing = sorted(meta.find_undeclared_variables(ast) - available)
            if missing:
                raise RenderError(
                    f"{self.campaign.source}: subject.{language}: undefined variable {missing[0]!r}"
                )
        if self.letters is not None:
            self.notes.extend(self.letters.check_names(available - {"letter_mailto"}))
            self.offers_letter = "letter_mailto" in used
            if not self.offers_letter:
                self.notes.append(
                    "letter: is defined, but no template links to it: add "
                    '<a href="{{ letter_mailto }}">...</a> where members should find it'
                )

    def prepare(self, contacts: Sequence[Contact]) -> None:
        """Compile every variant and prove inline-once equals inline-per-recipient on a sample."""
        columns: set[str] | None = None
        for contact in contacts:
            keys = set(contact.fields)
            columns = keys if columns is None else columns & keys
        computed = set(COMPUTED)
        if self.campaign.identification is None:  # a template reading it is told to declare it
            computed.discard("identification")
        if self.letters is not None:
            computed.add("letter_mailto")
        self._check_names((columns or set()) | set(self.campaign.vars) | computed)
        by_language: dict[str, list[Contact]] = {}
        for contact in contacts:
            by_language.setdefault(self.language_for(contact), []).append(contact)
        for language in self.languages:
            self.variants[language] = self._variant(language, by_language.get(language, []))

    def _sources(
        self, language: str
    ) -> tuple[str, str | None, jinja2.Template, jinja2.Template | None, str]:
        """Label, flat source (None if it cannot be flattened), reference, text, subject."""
        folder = self.campaign.template
        name = f"{language}.html"
        text_path = folder / f"{language}.txt"
        others = [lang for lang in self.languages if lang != language]
        try:
            if not self.combined or not others:
                reference = self.html_env.get_template(name)
                text = self.text_env.get_template(text_path.name) if text_path.exists() else None
                try:
                    flat: str | None = flatten(folder, name)
                except Unsupported:
                    flat = None
                return name, flat, reference, text, self._subject(language)
            # bilingual: combined: this language first, then the others after a divider.
            order = [language, *others]
            try:
                flat = combine_documents([flatten(folder, f"{lang}.html") for lang in order], order)
            except Unsupported as why:
                raise RenderError(f"{folder / name}: bilingual: combined: {why}") from None
            reference = self.html_env.from_string(flat)
            text = None
            if all((folder / f"{lang}.txt").exists() for lang in order):
                joined = f"\n\n{TEXT_DIVIDER}\n\n".join(
                    f'{{% include "{lang}.txt" %}}' for lang in order
                )
                text = self.text_env.from_string(f"{notice_text(order)}\n\n{joined}")
            subject = " / ".join(self._subject(lang) for lang in order)
            return f"{'+'.join(order)} (combined)", flat, reference, text, subject
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"{folder / (exc.name or name)}:{exc.lineno}: {exc.message}"
            ) from None

    def _subject(self, language: str) -> str:
        return typeset_subject(self.campaign.subject_for(language), language)

    def _variant(self, language: str, contacts: Sequence[Contact]) -> Variant:
        name, flat, reference, text_template, subject_source = self._sources(language)
        subject = self._compile(self.text_env, subject_source, f"{self.campaign.source}: subject")
        sample = spread(contacts, VERIFY_SAMPLE)
        warnings: list[str] = []
        order = (language, *(lang for lang in self.languages if lang != language))
        order = order if self.combined else (language,)
        french = "fr" in order
        from_txt = text_template is not None  # a .txt template, not derived from the HTML
        typeset_html = french and flat is None
        if french and flat is not None:  # once per variant, not per message
            try:
                flat = typeset_source(flat, language)
                reference = self._compile(self.html_env, flat, name)
            except Unsupported:
                typeset_html = True
        html_template: jinja2.Template = reference
        once = False
        try:
            if flat is None:
                raise Unsupported("the template cannot be flattened")
            references = [
                (ctx, self._run(reference, ctx, c)) for c in sample if (ctx := self.context(c))
            ]
            html_template, once = inline_verified(self.html_env, flat, references), True
        except Unsupported as why:
            warnings.append(f"{name}: CSS inlined per recipient (slower): {why}")
        if text_template is None and flat is not None:
            try:
                derived = self.text_env.from_string(text_once(flat, order == ("fr",)))
                if self._text_matches(reference, derived, sample, order == ("fr",)):
                    text_template = derived
                else:
                    warnings.append(f"{name}: plain text derived per recipient (slower)")
            except (Unsupported, jinja2.TemplateSyntaxError) as why:
                warnings.append(f"{name}: plain text derived per recipient (slower): {why}")
        fixed = "" if JINJA_RE.search(subject_source) else header_safe(subject_source, True)
        variant = Variant(
            language,
            subject,
            html_template,
            text_template,
            once,
            tuple(warnings),
            fixed,
            order,
            typeset_html,
            french and from_txt,
        )
        for contact in sample:  # render errors surface here, before anything is sent
            self._render_with(variant, contact)
        return variant

    def _text_matches(
        self,
        reference: jinja2.Template,
        derived: jinja2.Template,
        sample: Iterable[Contact],
        french: bool,
    ) -> bool:
        for contact in sample:
            ctx = self.context(contact)
            want = " ".join(html_to_text(self._run(reference, ctx, contact), french).split())
            if " ".join(self._run(derived, ctx, contact).split()) != want:
                return False
        return True

    def _run(self, template: jinja2.Template, ctx: Mapping[str, Any], contact: Contact) -> str:
        return self._guard(contact, lambda: template.render(ctx))

    def _guard(self, contact: Contact, render: Callable[[], _T]) -> _T:
        """Run template code; any failure is one error naming the member's row."""
        try:
            return render()
        except LetterError as exc:
            raise RenderError(f"{contact.source} row {contact.row}: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{contact.source} row {contact.row}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(
                f"{contact.source} row {contact.row}: template error: {exc}"
            ) from None
        except Exception as exc:  # template code can raise anything: 1 // 0, int("x"), ...
            raise RenderError(
                f"{contact.source} row {contact.row}: the template failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def _render_with(
        self, variant: Variant, contact: Contact, unsubscribe_url: str = ""
    ) -> RenderedContent:
        ctx = self.context(contact, unsubscribe_url)
        html = self._run(variant.html, ctx, contact)
        if not variant.inline_once:
            html = premailer_inline(html)
        if variant.typeset_html:
            html = french_html(html, variant.language)
        french = variant.order == ("fr",)  # a link's colon; a combined message keeps ": "
        text = (
            self._run(variant.text, ctx, contact) if variant.text else html_to_text(html, french)
        )
        if variant.typeset_text:  # no-break spaces in French text (typography.py)
            text = french_text(text, variant.order, TEXT_DIVIDER)
        subject = variant.fixed_subject or header_safe(
            self._run(variant.subject, ctx, contact), keep_no_break=True
        )
        return RenderedContent(subject, html, text, ctx["unsubscribe_url"])

    def render(self, contact: Contact, unsubscribe_url: str = "") -> RenderedContent:
        """Render one recipient; ``prepare`` must have run.

        ``unsubscribe_url`` replaces the member's own link (a test message carries a test link).
        """
        return self._render_with(
            self.variants[self.language_for(contact)], contact, unsubscribe_url
        )

    @property
    def warnings(self) -> list[str]:
        """Every variant's preparation warnings, then the campaign's."""
        return [w for v in self.variants.values() for w in v.warnings] + self.notes


def spread(items: Sequence[Contact], count: int) -> list[Contact]:
    """Up to ``count`` items spread over the sequence: first, last and between."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]
