"""Russian word data for ``normalize``: prepositions and the case they govern, months, «год»,
units with their case forms, ordinal endings and abbreviations.  Data only, no logic but lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The case a preposition right before a number asks for (n g d a i p).  Ambiguous ones
#: (за, по, с + instrumental) take their most frequent reading with numbers.
PREPOSITION_CASE = {
    **dict.fromkeys("до от из без для около после у с со кроме возле вокруг среди против свыше более "
                    "менее больше меньше мимо вместо ради".split(), "g"),
    **dict.fromkeys("к ко благодаря согласно вопреки навстречу".split(), "d"),
    **dict.fromkeys("в во на через про сквозь".split(), "a"),
    **dict.fromkeys("над под перед между".split(), "i"),
    **dict.fromkeys("о об обо при".split(), "p"),
}

MONTHS_GENITIVE = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
                   "октября", "ноября", "декабря")
MONTHS_RE = "|".join(MONTHS_GENITIVE)

#: «год» after a year: its case, and whether it is plural.
YEAR_WORD_CASE = {
    "год": ("n", False), "года": ("g", False), "году": ("p", False), "годом": ("i", False),
    "годе": ("p", False), "годы": ("n", True), "годов": ("g", True), "годам": ("d", True),
    "годами": ("i", True), "годах": ("p", True),
}
#: Forms of «год» that only a calendar year takes («в 988 году»); the others are years only from 1000
#: up or with an ordinal ending («90-х годах»), and counts otherwise («2 года», «через 5 лет»).
YEAR_ONLY = ("году", "годом", "годе", "г.", "гг.")
YEAR_FORMS = {"n": ("год", "годы"), "g": ("года", "годов"), "d": ("году", "годам"), "a": ("год", "годы"),
              "i": ("годом", "годами"), "p": ("году", "годах")}
YEAR_WORDS_RE = "|".join(sorted((re.escape(w) for w in [*YEAR_WORD_CASE, "г.", "гг."]), key=len, reverse=True))

CENTURY_CASE = {"век": ("n", False), "века": ("g", False), "веке": ("p", False), "веку": ("d", False),
                "веком": ("i", False), "веков": ("g", True), "веках": ("p", True)}
CENTURY_RE = "|".join(sorted(CENTURY_CASE, key=len, reverse=True))

#: Ordinal endings after a hyphen («5-го»): case, gender, plural.  «-м» is settled by the preposition.
ORDINAL_ENDINGS = {
    **dict.fromkeys(("й", "ый", "ий"), ("n", "m", False)),
    **dict.fromkeys(("я", "ая", "яя"), ("n", "f", False)),
    **dict.fromkeys(("е", "ое", "ее"), ("n", "n", False)),
    **dict.fromkeys(("ые", "ие"), ("n", "m", True)),
    **dict.fromkeys(("го", "ого", "его"), ("g", "m", False)),
    **dict.fromkeys(("му", "ому", "ему"), ("d", "m", False)),
    **dict.fromkeys(("м", "ом", "ем"), ("p", "m", False)),
    **dict.fromkeys(("ым", "им"), ("i", "m", False)),
    **dict.fromkeys(("ю", "ую", "юю"), ("a", "f", False)),
    **dict.fromkeys(("ой",), ("g", "f", False)),
    **dict.fromkeys(("х", "ых", "их"), ("p", "m", True)),
    **dict.fromkeys(("ми", "ыми", "ими"), ("i", "m", True)),
}
ORDINAL_ENDINGS_RE = "|".join(sorted(ORDINAL_ENDINGS, key=len, reverse=True))


@dataclass(frozen=True)
class Noun:
    gender: str
    forms: dict[str, tuple[str, str]]   # case -> (singular, plural)
    suffix: str = ""                    # words after it: «градус Цельсия», «километр в час»
    multiplier: bool = False            # тысяча, миллион: a unit after it is genitive plural
    spellings: tuple[str, ...] = field(default=())


def _noun(gender: str, forms: str, **kw) -> Noun:
    """``forms``: «n/nPl g/gPl d/dPl a/aPl i/iPl p/pPl» in one string."""
    pairs = [tuple(p.split("/")) for p in forms.split()]
    return Noun(gender, dict(zip("ngdaip", pairs)), **kw)


_PERCENT = _noun("m", "процент/проценты процента/процентов проценту/процентам процент/проценты "
                      "процентом/процентами проценте/процентах")
_ROUBLE = _noun("m", "рубль/рубли рубля/рублей рублю/рублям рубль/рубли рублём/рублями рубле/рублях")
_KOPECK = _noun("f", "копейка/копейки копейки/копеек копейке/копейкам копейку/копейки копейкой/копейками "
                     "копейке/копейках")
_DOLLAR = _noun("m", "доллар/доллары доллара/долларов доллару/долларам доллар/доллары долларом/долларами "
                     "долларе/долларах")
_EURO = _noun("m", " ".join(["евро/евро"] * 6))
_THOUSAND = _noun("f", "тысяча/тысячи тысячи/тысяч тысяче/тысячам тысячу/тысячи тысячей/тысячами "
                       "тысяче/тысячах", multiplier=True)
_MILLION = _noun("m", "миллион/миллионы миллиона/миллионов миллиону/миллионам миллион/миллионы "
                      "миллионом/миллионами миллионе/миллионах", multiplier=True)
_BILLION = _noun("m", "миллиард/миллиарды миллиарда/миллиардов миллиарду/миллиардам миллиард/миллиарды "
                      "миллиардом/миллиардами миллиарде/миллиардах", multiplier=True)


def _metric(stem: str, **kw) -> Noun:
    return _noun("m", f"{stem}/{stem}ы {stem}а/{stem}ов {stem}у/{stem}ам {stem}/{stem}ы {stem}ом/{stem}ами "
                      f"{stem}е/{stem}ах", **kw)


_MINUTE = _noun("f", "минута/минуты минуты/минут минуте/минутам минуту/минуты минутой/минутами минуте/минутах")
_SECOND = _noun("f", "секунда/секунды секунды/секунд секунде/секундам секунду/секунды секундой/секундами "
                     "секунде/секундах")
_HOUR = _noun("m", "час/часы часа/часов часу/часам час/часы часом/часами часе/часах")
_PIECE = _noun("f", "штука/штуки штуки/штук штуке/штукам штуку/штуки штукой/штуками штуке/штуках")
_DEGREE = _metric("градус")

#: Unit spellings after a number (or before it, for the currency signs), longest first in UNITS_RE.
UNITS: dict[str, Noun] = {
    "%": _PERCENT, "руб.": _ROUBLE, "руб": _ROUBLE, "р.": _ROUBLE, "₽": _ROUBLE, "коп.": _KOPECK,
    "$": _DOLLAR, "долл.": _DOLLAR, "€": _EURO, "тыс.": _THOUSAND, "тыс": _THOUSAND, "млн.": _MILLION,
    "млн": _MILLION, "млрд.": _BILLION, "млрд": _BILLION,
    "км/ч": _metric("километр", suffix="в час"), "км": _metric("километр"), "м": _metric("метр"),
    "см": _metric("сантиметр"), "мм": _metric("миллиметр"), "кг": _metric("килограмм"), "г": _metric("грамм"),
    "ч.": _HOUR, "ч": _HOUR, "мин.": _MINUTE, "мин": _MINUTE, "сек.": _SECOND, "сек": _SECOND,
    "шт.": _PIECE, "°C": Noun(_DEGREE.gender, _DEGREE.forms, suffix="Цельсия"),
    "°С": Noun(_DEGREE.gender, _DEGREE.forms, suffix="Цельсия"), "°": _DEGREE,
}
UNITS_RE = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))

#: Stems of common feminine and neuter nouns that follow numbers: «одна минута», «две недели», «одно место».
_FEMININE = ("тысяч", "минут", "секунд", "недел", "копе", "штук", "страниц", "строк", "глав", "книг", "ноч",
             "женщин", "девочк", "девушк", "сестр", "комнат", "квартир", "машин", "школ", "задач", "попытк",
             "ошибк", "точк", "звезд", "тонн", "сери", "сотн")
_NEUTER = ("мест", "слов", "числ", "окн", "яблок", "очк", "утр", "письм", "колес", "яиц", "яйц", "кресл",
           "сердц", "облак", "озер")


def gender_of_next(after: str) -> str:
    """m, f or n for the word that follows a number (m when unknown: the most frequent)."""
    m = re.match(r"\s*([а-яё]+)", after.lower())
    if not m:
        return "m"
    word = m.group(1)
    if word.startswith(_FEMININE):
        return "f"
    if word.startswith(_NEUTER):
        return "n"
    return "m"


#: Abbreviations read as words (keys without spaces, lower case).  «г.» alone before a name is «город».
ABBREVIATIONS = {
    "т.е.": "то есть", "т.д.": "так далее", "т.п.": "тому подобное", "т.к.": "так как",
    "т.н.": "так называемый", "ит.д.": "и так далее", "ит.п.": "и тому подобное", "идр.": "и другие", "напр.": "например",
    "см.": "смотрите", "ул.": "улица", "стр.": "страница", "проф.": "профессор", "акад.": "академик",
    "им.": "имени", "г.": "город", "руб.": "рублей", "коп.": "копеек", "тыс.": "тысяч", "млн": "миллионов",
    "млн.": "миллионов", "млрд": "миллиардов", "млрд.": "миллиардов", "др.": "другие", "пр.": "прочие",
}
ABBREVIATIONS_RE = "|".join([
    r"т\.\s?[едпкн]\.", r"и\s?т\.\s?[дп]\.", r"и\s?др\.", r"г\.(?=\s+[А-ЯЁ])",
    *(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)
      if not k.startswith(("т.", "и", "г."))),
])

PERCENT_WORD = {"en": "percent", "de": "Prozent", "es": "por ciento", "fr": "pour cent", "it": "per cento",
                "pt": "por cento", "uk": "відсотків", "pl": "procent", "nl": "procent"}

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman(s: str) -> int | None:
    """I…MMMCMXCIX as a number; None for a malformed numeral."""
    total = 0
    for a, b in zip(s, s[1:] + " "):
        v = _ROMAN[a]
        total += -v if b != " " and _ROMAN[b] > v else v
    return total if 0 < total < 4000 and _to_roman(total) == s else None


def _to_roman(n: int) -> str:
    out = ""
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                       (4, "IV"), (1, "I")):
        while n >= value:
            out += sym
            n -= value
    return out
