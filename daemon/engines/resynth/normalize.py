"""Numbers, dates, percentages and abbreviations as words, before stress marks and synthesis.

Silero voices skip digits (snakers4/silero-models#220) and Festival's Russian voice reads them
without agreement, so a phrase is written out first.  Number words come from num2words.

Russian gets case agreement where the words around a number show it:
- a preposition before it: «до 5» → «до пяти», «к 5» → «к пяти», «о 5» → «о пяти»;
- the form of «год» after a year: «в 2026 году» → «в две тысячи двадцать шестом году»;
- a hyphenated ending: «5-го» → «пятого», «в 90-х» → «в девяностых»;
- a date: «1 декабря», «01.12.2026» → «первое декабря две тысячи двадцать шестого года»;
- the unit after it agrees with the number: «1 %» → «один процент», «2 %» → «два процента»,
  «5 %» → «пять процентов», «до 5 %» → «до пяти процентов», «3 млн руб.» → «три миллиона рублей».
Other languages get cardinals, decimals and percentages through num2words (``other``).
Pure functions; nothing is loaded.
"""

from __future__ import annotations

import re
from decimal import Decimal

from daemon.engines.resynth import ru_words as W

_NUM = r"\d{1,3}(?:[\u00a0\u202f ]\d{3})+(?!\d)|\d+"
_FRAC = r"(?:[.,]\d+(?![.,]?\d))?"
_SPACE_IN_NUMBER = re.compile(r"[\u00a0\u202f ]")


def normalize(text: str, language: str) -> str:
    """``text`` with numbers and abbreviations written out, for ``language`` (an ISO code)."""
    lang = (language or "").lower().split("-")[0]
    out = russian(text) if lang == "ru" else other(text, lang)
    return re.sub(r"\s{2,}", " ", out).strip()


# --- Russian ------------------------------------------------------------------

def _n2w(value, **kw) -> str:
    from num2words import num2words

    return num2words(value, lang="ru", **kw)


def cardinal(number: str | int | Decimal, case: str = "n", gender: str = "m") -> str:
    """A cardinal in ``case`` (n g d a i p) and ``gender`` (m f n); decimals as «три целых пять десятых»."""
    value = _value(number)
    if isinstance(value, Decimal):
        return _n2w(value)
    words = _n2w(value, case=case, gender=gender, animate=False)
    return words[5:] if words.startswith("одна тысяча") else words  # «тысяча девятьсот», as said


def ordinal(number: str | int, case: str = "n", gender: str = "m", plural: bool = False) -> str:
    return _n2w(int(_value(number)), to="ordinal", case=case, gender=gender, plural=plural)


def _value(number) -> int | Decimal:
    if isinstance(number, (int, Decimal)):
        return number
    s = _SPACE_IN_NUMBER.sub("", number).replace(",", ".")
    return Decimal(s) if "." in s else int(s)


def agree(value: int | Decimal, case: str, forms: dict[str, tuple[str, str]], *, counted: bool = True) -> str:
    """The form of a noun after ``value`` in ``case``: «процент», «процента», «процентов»…

    ``counted=False``: the noun follows «тысяч»/«миллионов» and is always genitive plural."""
    if not counted:
        return forms["g"][1]
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return forms["g"][0]  # «три целых пять десятых процента»
    n = int(value)
    last, last2 = n % 10, n % 100
    one = last == 1 and last2 != 11
    if case in ("n", "a"):
        if one:
            return forms[case][0]
        if 2 <= last <= 4 and not 12 <= last2 <= 14:
            return forms["g"][0]
        return forms["g"][1]
    return forms[case][0 if one else 1]


def _case_before(text: str, pos: int, default: str = "n") -> str:
    """The case a preposition right before ``pos`` asks for (``default`` when there is none)."""
    m = re.search(r"(?:^|[^\w])(\w+)\s+(?:минус\s+|плюс\s+)?$", text[:pos])
    if not m:
        return default
    return W.PREPOSITION_CASE.get(m.group(1).lower(), default)


def _sub(pattern: str, fn, text: str, flags: int = 0) -> str:
    """re.sub whose replacement function also sees the whole text (for the word before a match)."""
    return re.sub(pattern, lambda m: fn(m, text), text, flags=flags)


def russian(text: str) -> str:
    text = re.sub(r"(?<=[A-Za-zА-Яа-яЁё])(?=\d)", " ", text)  # «Г482» (Whisper glues them): a letter, a number
    text = _sub(r"(?<!\d)(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?!\d)(\s*(?:г\.|года|год\b))?", _date, text)
    text = _sub(rf"(?<!\d)(\d{{1,2}})(?:-?(?:го|е|ое|му))?\s+({W.MONTHS_RE})\b", _day_month, text)
    text = _sub(r"(?<![\w.,])(\d{1,4})(-?(?:й|го|м|му|х|е))?\s*(" + W.YEAR_WORDS_RE + r")(?!\w)", _year, text)
    text = _sub(r"\b([IVXLC]+)\s+(" + W.CENTURY_RE + r")\b", _century, text)
    text = _sub(r"(?<!\d)(\d+)-(" + W.ORDINAL_ENDINGS_RE + r")\b", _hyphen_ordinal, text)
    text = _sub(r"(?<![\d:])(\d{1,2}):(\d{2})(?![\d:])", _clock, text)
    text = _sub(r"(?:^|(?<=[\s(«\"]))([-−+])(?=\d)", _sign, text)
    text = _sub(rf"([$€₽])\s?({_NUM}){_FRAC}", _currency_first, text)
    text = _sub(rf"(?<![\w.,])({_NUM})({_FRAC})\s*({W.UNITS_RE})(?:\s*({W.UNITS_RE}))?(?![\w])", _number_unit, text)
    text = _sub(rf"(?<![\w.,])({_NUM})({_FRAC})(?!\w)", _number, text)
    text = _sub(r"(?<!\w)(" + W.ABBREVIATIONS_RE + r")(?=\s|$|[,;:!?)»])", _abbreviation, text)
    return text.replace("№", " номер ").replace("&", " и ")


def _date(m: re.Match, text: str) -> str:
    day, month, year = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return m.group(0)
    if len(year) == 2:
        year = ("20" if int(year) < 50 else "19") + year
    case = _case_before(text, m.start())
    return (f"{ordinal(day, case, 'n')} {W.MONTHS_GENITIVE[month - 1]} {ordinal(year, 'g')} года")


def _day_month(m: re.Match, text: str) -> str:
    day = int(m.group(1))
    if not 1 <= day <= 31:
        return m.group(0)
    return f"{ordinal(day, _case_before(text, m.start()), 'n')} {m.group(2)}"


def _year(m: re.Match, text: str) -> str:
    number, ending, word = m.group(1), m.group(2), m.group(3)
    if word not in W.YEAR_ONLY and not ending and int(number) < 1000:
        return m.group(0)  # a count («2 года», «через 5 лет»): read as a number further on
    if word in ("г.", "гг."):
        case = _case_before(text, m.start(), default="g")
        if case == "a":  # «в 2026 г.» is «в … году»
            case = "p"
        plural = word == "гг."
        noun = W.YEAR_FORMS[case][1 if plural else 0]
    else:
        case, plural = W.YEAR_WORD_CASE[word]
        if word == "году" and _case_before(text, m.start()) == "d":
            case = "d"
        noun = word
    return f"{ordinal(number, case, 'm', plural)} {noun}"


def _century(m: re.Match, text: str) -> str:
    value = W.roman(m.group(1))
    if value is None:
        return m.group(0)
    case, plural = W.CENTURY_CASE[m.group(2)]
    if m.group(2) == "веку" and _case_before(text, m.start()) == "p":
        case = "p"  # «в XXI веке» is веке; «по веку» is dative; «на веку» stays dative
    return f"{ordinal(value, case, 'm', plural)} {m.group(2)}"


def _hyphen_ordinal(m: re.Match, text: str) -> str:
    case, gender, plural = W.ORDINAL_ENDINGS[m.group(2)]
    if m.group(2) == "м":  # -м: «в 5-м» (p), «с 5-м» (i)
        case = "i" if _case_before(text, m.start()) == "i" else "p"
    return ordinal(m.group(1), case, gender, plural)


def _clock(m: re.Match, text: str) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    if hours > 24 or minutes > 59:
        return m.group(0)
    mins = cardinal(minutes) if minutes >= 10 else "ноль " + cardinal(minutes)
    return f"{cardinal(hours, _case_before(text, m.start()))} {mins}"


def _sign(m: re.Match, text: str) -> str:
    return "минус " if m.group(1) in "-−" else "плюс "


def _currency_first(m: re.Match, text: str) -> str:
    number = m.group(0)[1:].strip()
    value = _value(number)
    case = _case_before(text, m.start())
    noun = W.UNITS[m.group(1)]
    return f"{cardinal(value, case, noun.gender)} {agree(value, case, noun.forms)}"


def _number_unit(m: re.Match, text: str) -> str:
    value = _value(m.group(1) + m.group(2))
    case = _case_before(text, m.start())
    first = W.UNITS[m.group(3)]
    words = [cardinal(value, case, first.gender), agree(value, case, first.forms)]
    if first.suffix:
        words.append(first.suffix)
    if m.group(4):  # «3 млн руб.»: the unit after «миллиона» is genitive plural
        second = W.UNITS[m.group(4)]
        words.append(agree(value, case, second.forms, counted=not first.multiplier))
        if second.suffix:
            words.append(second.suffix)
    return " ".join(words)


def _number(m: re.Match, text: str) -> str:
    value = _value(m.group(1) + m.group(2))
    case = _case_before(text, m.start())
    after = text[m.end():m.end() + 20]
    return cardinal(value, case, W.gender_of_next(after))


def _abbreviation(m: re.Match, text: str) -> str:
    key = re.sub(r"\s+", "", m.group(1)).lower()
    return W.ABBREVIATIONS.get(key, m.group(1))


# --- other languages ------------------------------------------------------------

def other(text: str, lang: str) -> str:
    """Cardinals, decimals, percentages and dollar amounts through num2words where it knows ``lang``."""
    from num2words import CONVERTER_CLASSES, num2words

    if lang not in CONVERTER_CLASSES:
        return text
    # English groups thousands with commas and writes decimals with a point; most others the reverse.
    group, point = (",", ".") if lang == "en" else (r"[\u00a0\u202f .]", ",")
    percent, dollar = W.PERCENT_WORD.get(lang, "%"), "dollars" if lang == "en" else "$"

    def number(m: re.Match) -> str:
        whole = re.sub(group, "", m.group(2))
        value = Decimal(whole + "." + m.group(3)) if m.group(3) else int(whole)
        if lang == "en" and isinstance(value, int) and 1100 <= value <= 2099 and not (m.group(1) or m.group(4)):
            words = num2words(value, lang="en", to="year")  # «nineteen sixty-two»
        else:
            words = num2words(value, lang=lang)
        if m.group(1):
            words += f" {dollar}"
        return words + (f" {percent}" if m.group(4) else "")

    pattern = (rf"(\$)?(?<![\w.,])(\d{{1,3}}(?:{group}\d{{3}})+(?!\d)|\d+)(?:{re.escape(point)}(\d+))?"
               rf"(?![\w])(\s*%)?")
    return re.sub(pattern, number, text)
