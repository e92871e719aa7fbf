"""Numbers, dates, percentages and abbreviations read as words (issue 13), Russian with case agreement."""

from __future__ import annotations

import pytest

from daemon.engines.resynth.normalize import agree, cardinal, normalize
from daemon.engines.resynth.ru_words import UNITS, roman

RU = [
    ("Маша 496-Ира 471 Олег 482 и Марина 614.",
     "Маша четыреста девяносто шесть-Ира четыреста семьдесят один Олег четыреста восемьдесят два "
     "и Марина шестьсот четырнадцать."),
    # prepositions set the case of the number and of the unit after it
    ("Цены выросли на 5%, а потом до 12 %.", "Цены выросли на пять процентов, а потом до двенадцати процентов."),
    ("к 3 процентам и о 21 проценте", "к трём процентам и о двадцати одном проценте"),
    ("1 %, 2 %, 5 %, 11 %, 22 %", "один процент, два процента, пять процентов, одиннадцать процентов, "
                                  "двадцать два процента"),
    ("12,5 %", "двенадцать целых пять десятых процента"),
    # years: the form of «год» says the case
    ("В 2026 году", "В две тысячи двадцать шестом году"),
    ("к 2030 году", "к две тысячи тридцатому году"),
    ("с 1990 года", "с тысяча девятьсот девяностого года"),
    ("1962 год", "тысяча девятьсот шестьдесят второй год"),
    ("в 2026 г.", "в две тысячи двадцать шестом году"),
    ("в 90-х годах", "в девяностых годах"),
    # …but a small number before «года»/«лет» is a count
    ("через 2 года и 5 лет", "через два года и пять лет"),
    # dates
    ("Встреча 01.12.2026 в 10:30.", "Встреча первое декабря две тысячи двадцать шестого года в десять тридцать."),
    ("до 5 мая", "до пятого мая"),
    ("в 9:05", "в девять ноль пять"),
    # ordinals written with an ending, Roman centuries
    ("на 5-м этаже, 2-го числа, 3-я попытка", "на пятом этаже, второго числа, третья попытка"),
    ("в XXI веке", "в двадцать первом веке"),
    # gender from the noun after the number
    ("1 тысяча, 2 минуты, 1 место, 21 день", "одна тысяча, две минуты, одно место, двадцать один день"),
    # units, currencies, signs
    ("3 млн руб. и 5 тыс. долл.", "три миллиона рублей и пять тысяч долларов"),
    ("$5 и 2 €", "пять долларов и два евро"),
    ("было -35 °C и +5", "было минус тридцать пять градусов Цельсия и плюс пять"),
    ("120 км/ч", "сто двадцать километров в час"),
    ("1 000 000 человек", "один миллион человек"),
    ("а Г482 и", "а Г четыреста восемьдесят два и"),
    # abbreviations
    ("и т.д. и т. п., т.е. см. ул. Ленина, г. Москва, № 5",
     "и так далее и тому подобное, то есть смотрите улица Ленина, город Москва, номер пять"),
]


@pytest.mark.parametrize("text, spoken", RU)
def test_russian(text, spoken):
    assert normalize(text, "ru") == spoken


def test_text_without_numbers_is_left_alone():
    text = "Старинный з+амок над рекой, «кавычки» и — тире."
    assert normalize(text, "ru") == text


def test_stress_marks_and_minus_signs_are_told_apart():
    # A "+" before a letter is Silero's stress mark (a transcript may carry them); before a digit, «плюс».
    assert normalize("з+амок и +3", "ru") == "з+амок и плюс три"
    assert normalize("5-7 дней", "ru").startswith("пять")


def test_agreement_rules():
    percent = UNITS["%"].forms
    assert [agree(n, "n", percent) for n in (1, 2, 5, 11, 12, 21, 104, 111)] == [
        "процент", "процента", "процентов", "процентов", "процентов", "процент", "процента", "процентов"]
    assert [agree(n, "g", percent) for n in (1, 5, 21)] == ["процента", "процентов", "процента"]
    assert agree(3, "p", percent) == "процентах"
    assert cardinal(1, "a", "f") == "одну" and cardinal(1000) == "тысяча" and cardinal(2000) == "две тысячи"


def test_roman_numerals():
    assert [roman(s) for s in ("XXI", "XIX", "IV", "CD", "IIII", "VX")] == [21, 19, 4, 400, None, None]


@pytest.mark.parametrize("lang, text, spoken", [
    ("en", "In 1962, 25% of 1,000 people paid $5.",
     "In nineteen sixty-two, twenty-five percent of one thousand people paid five dollars."),
    ("en", "3.5 apples", "three point five apples"),
    ("de", "Es waren 25 Leute, 3,5 %", "Es waren fünfundzwanzig Leute, drei Komma fünf Prozent"),
    ("xx", "42 things", "42 things"),  # a language num2words does not know: unchanged
])
def test_other_languages(lang, text, spoken):
    assert normalize(text, lang) == spoken
